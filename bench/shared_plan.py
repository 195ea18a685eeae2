"""Cost of the thread-safety contract: throughput of one plan shared by T Python threads (runs of
one plan are serialized by its lock) vs one plan per thread (runs in parallel), and one thread
alone. With --mixq-threads 1 (default), T threads use T cores either way: the lock's worst case.
With mixq's default thread count a single run already uses every core.

python bench/shared_plan.py [--threads T] [--mixq-threads M] [--seconds S] [--batch B]
"""
from __future__ import annotations

import argparse
import threading
import time

import numpy as np


def throughput(plans, x, seconds: float) -> float:
    """Runs per second of len(plans) threads, thread i running plans[i], for `seconds`."""
    counts = [0] * len(plans)
    stop = time.perf_counter() + seconds

    def work(i):
        while time.perf_counter() < stop:
            plans[i].run(x)
            counts[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(plans))]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--mixq-threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    import mixq
    from mixq.models import zoo

    torch.manual_seed(0)
    x = torch.randn(args.batch, 1, 28, 28)
    model = zoo.resnet20().eval()
    plans = [mixq.compile(model, x, "w8a8", calibration=[x], progress=False) for _ in range(args.threads)]
    xn = x.numpy()
    before = mixq.get_num_threads()
    mixq.set_num_threads(args.mixq_threads)
    try:
        for p in plans:
            p.run(xn)
        rows = []
        for rnd in range(2):  # interleaved: the machine's drift hits every case alike
            rows.append((throughput(plans[:1], xn, args.seconds),
                         throughput([plans[0]] * args.threads, xn, args.seconds),
                         throughput(plans, xn, args.seconds)))
    finally:
        mixq.set_num_threads(before)
    one, shared, separate = (max(r[i] for r in rows) for i in range(3))
    print(f"ResNet-20 w8a8, batch {args.batch}, mixq threads {args.mixq_threads}, {args.threads} Python threads (runs/s, best of 2)")
    print(f"  1 thread, 1 plan            {one:9.1f}")
    print(f"  {args.threads} threads, 1 shared plan    {shared:9.1f}   ({shared / separate:.2f}x of separate plans)")
    print(f"  {args.threads} threads, 1 plan each      {separate:9.1f}")


if __name__ == "__main__":
    main()
