"""Precision-search throughput: evaluations per minute, local executor vs Ray workers.

    python bench/search_throughput.py [--quick] [--json [PATH]] [--repeats R]

What a search spends its time on is evaluating configs: compile the plan at the config, score
it on the validation images, cost it. Cases, on ResNet-20 (Fashion-MNIST) with the candidates
fp32 / w8a8 / w4a8-g128:
  - "greedy round, val N": the 44 configs of a greedy round from the fp32 reference (each of the
    22 layers at each of its 2 lower precisions), evaluated by each executor's batch call (what the
    greedy hands over), at N = 1000 validation images (the CLI's default) and N = 64 (where the
    fixed costs per evaluation show);
  - "greedy search, val 64": a whole mixq.search (greedy, w8a8 / w4a8-g128, no cache), which also
    pays for the capture, the calibration, Ray's start-up and the last rounds' small batches.
Impls: mixq-local-2t (this process, 2 threads), mixq-local-1t (1 thread), mixq-ray-1w (one Ray
worker of 1 thread), mixq-ray-2w (two workers of 1 thread). The Ray run has 3 logical CPUs so that
both pools exist at once; only one impl computes at any time (interleaved rounds). On 2 cores
this shows the overhead Ray adds and what two processes gain over two threads, not cluster
scaling. Rows add "evaluations", "evals_per_min", "other_cores" (cores' worth of CPU other
processes used during the interleaved rounds: this machine is shared), and for Ray "overhead_per_eval_ms" (ray-1w
against local-1t on the same configs) and "shipped_MB" (what the object store holds: the
detached compiler plus evaluate with its validation images). A row "ray start-up" times
shipping evaluate and starting 2 workers, and one the local ray.init.
"""
from __future__ import annotations

import functools
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import cli, mixq_api  # noqa: E402
from harness.log import make_log  # noqa: E402
from harness.machine import machine_info  # noqa: E402
from harness.peers import set_threads  # noqa: E402
from harness.report import Results, print_columns, write_results  # noqa: E402
from harness.timing import time_interleaved, warn_if_busy  # noqa: E402

CANDIDATES = ("fp32", "w8a8", "w4a8-g128")
SEARCH_CANDIDATES = ("w8a8", "w4a8-g128")
log = make_log("search_throughput")


def round_configs(layers: list[str]) -> list[dict]:
    """The moves of a greedy round from the reference: each layer at each lower candidate."""
    ref = {name: CANDIDATES[0] for name in layers}
    return [{**ref, name: p} for name in layers for p in CANDIDATES[1:]]


def shipped_mb(obj) -> float:
    from ray import cloudpickle

    return len(cloudpickle.dumps(obj)) / 1e6


def main() -> int:
    import argparse

    args = cli.add_common(argparse.ArgumentParser(description=__doc__.splitlines()[0]),
                          repeats=(3, 1)).parse_args()  # a round of 44 evaluations on 1 000 images takes ~15 s
    args = cli.finish_args(args)
    try:
        import ray
        import torch  # noqa: F401 (the model is a torch module)
    except ImportError as e:
        raise SystemExit(f"bench/search_throughput.py needs torch and Ray: pip install \".[bench,ray]\" ({e})")
    set_threads(args.threads)
    warn_if_busy()
    machine = machine_info(args.threads)
    study = mixq_api.study()
    model = mixq_api.registry().get("resnet20", pretrained=True)
    results, table = Results(), []
    t0 = time.perf_counter()
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    took = time.perf_counter() - t0
    results.add("ray start-up: ray.init of a local Ray", "mixq-ray", took, took)
    table += [["ray start-up: ray.init of a local Ray", "mixq-ray", f"{took:.2f}", "", "", ""], None]
    try:
        for val in ((200,) if args.quick else (1000, 64)):
            time_round(args, study, model, val, results, table)
        if not args.quick:
            time_search(args, study, model, results, table)
    finally:
        ray.shutdown()
    print()
    print_columns(["case", "impl", "median s", "evals/min", "overhead/eval ms", "shipped MB"], table)
    write_results(args, "search_throughput", machine, results)
    return 0


def time_round(args, study, model, val: int, results: Results, table: list) -> None:
    import torch

    data = study.fashion_mnist_data(val, seed=0)
    score = functools.partial(study.accuracy, x=data.x_val, y=data.y_val)
    local = mixq_api.search_evaluator(model, torch.from_numpy(data.x_val[:1]), data.calibration, score, CANDIDATES)
    configs = round_configs(local.compiler.layer_names())
    shipped = local.shippable()
    size = shipped_mb(shipped)
    pools = {1: mixq_api.ray_executor(workers=1, log=log).evaluator(shipped, progress=False)}
    t0 = time.perf_counter()
    pools[2] = mixq_api.ray_executor(workers=2, log=log).evaluator(shipped, progress=False)
    took = time.perf_counter() - t0
    case = f"ray start-up: ship evaluate ({size:.1f} MB) + start 2 workers, val {val}"
    results.add(case, "mixq-ray-2w", took, took)["shipped_MB"] = round(size, 2)
    table += [[case, "mixq-ray-2w", f"{took:.2f}", "", "", f"{size:.2f}"], None]

    def local_run(threads):
        def run():
            mixq_api.set_threads(threads)
            try:
                mixq_api.evaluate_many(local, configs)
            finally:
                mixq_api.set_threads(args.threads)
        return run

    fns = {"mixq-local-2t": local_run(2), "mixq-local-1t": local_run(1),
           "mixq-ray-1w": lambda: mixq_api.evaluate_many(pools[1], configs),
           "mixq-ray-2w": lambda: mixq_api.evaluate_many(pools[2], configs)}
    for run in fns.values():  # warm: weights packed in every process, actors loaded
        run()
    per_round: dict = {}
    timed = time_interleaved(fns, args, block_s=0, per_round=per_round)
    for pool in pools.values():
        pool.close()
    case = f"resnet20 greedy round ({len(configs)} configs), val {val}"
    for impl, (med, mn, load) in timed.items():
        row = results.add(case, impl, med, mn, rounds=per_round[impl])
        row["other_cores"] = round(load, 2)  # what other processes used meanwhile (same for every impl)
        row["evaluations"] = len(configs)
        row["evals_per_min"] = round(60 * len(configs) / med, 1)
        if impl == "mixq-ray-1w":  # the same configs on one thread, in a worker or in this process
            row["overhead_per_eval_ms"] = round(1e3 * (med - timed["mixq-local-1t"][0]) / len(configs), 2)
        if impl.startswith("mixq-ray"):
            row["shipped_MB"] = round(size, 2)
        table.append([case, impl, f"{med:.2f}", f"{row['evals_per_min']:.0f}",
                      f"{row.get('overhead_per_eval_ms', '')}", f"{row.get('shipped_MB', '')}"])
    table.append(None)
    log(f"{case}: " + ", ".join(f"{impl} {60 * len(configs) / t[0]:.0f}/min" for impl, t in timed.items()))


def time_search(args, study, model, results: Results, table: list) -> None:
    """A whole greedy search per executor (the Ray one starts its 2 workers each time; ray.init
    is done), alternating which goes first, args.repeats times each."""
    import mixq
    import torch

    data = study.fashion_mnist_data(64, seed=0)
    score = functools.partial(study.accuracy, x=data.x_val, y=data.y_val)
    x1 = torch.from_numpy(data.x_val[:1])
    case = "resnet20 greedy search (w8a8, w4a8-g128), val 64"
    times: dict = {"mixq-local-2t": [], "mixq-ray-2w": []}
    evaluations = {}
    for r in range(args.repeats):
        for impl in (list(times) if r % 2 == 0 else list(times)[::-1]):
            executor = "local" if impl == "mixq-local-2t" else mixq_api.ray_executor(workers=2, log=log)
            t0 = time.perf_counter()
            res = mixq.search(model, x1, data.calibration, score, candidates=SEARCH_CANDIDATES, algorithm="greedy",
                              max_drop=1.0, executor=executor, progress=False)
            times[impl].append(time.perf_counter() - t0)
            evaluations[impl] = res.evaluations
    for impl, ts in times.items():
        med = statistics.median(ts)
        row = results.add(case, impl, med, min(ts), rounds=ts)
        row["evaluations"] = evaluations[impl]
        row["evals_per_min"] = round(60 * evaluations[impl] / med, 1)
        table.append([case, impl, f"{med:.2f}", f"{row['evals_per_min']:.0f}", "", ""])
    log(f"{case}: {evaluations} evaluations; "
        + ", ".join(f"{impl} {statistics.median(ts):.1f} s" for impl, ts in times.items()))


if __name__ == "__main__":
    sys.exit(main())
