"""A/B of two mixq builds: the same GEMM, decode, CNN, encoder and decoder cases, timed interleaved.

    python bench/ab.py --before /path/to/old-venv/bin/python [--quick] [--groups gemm,gemv,cnn,encoder,decoder]

Two builds of mixq cannot share a process (their native modules register the same types), so
each side is a worker process (bench/ab_worker.py) under its own interpreter: `--before` names
the interpreter that imports the old build (a venv made with --system-site-packages and the old
checkout pip-installed into it), `--after` the new one (default: this interpreter). The workers
take turns, a block of calls each, in an order that alternates from round to round, so both see
the same moments of the machine; only one runs at a time. The table gives each case's median
per side and the after/before ratio with its range over the rounds: a refactor should sit
within that range of 1.00.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


class Worker:
    def __init__(self, python: str, label: str, env: dict):
        self.label = label
        self.proc = subprocess.Popen([python, os.path.join(HERE, "ab_worker.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd="/", env=env)

    def ask(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"ab: the {self.label} worker died (see its error above)")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def block_calls(worker: Worker, case: str, block_s: float) -> int:
    """Calls per block so a block lasts about block_s (at least 1)."""
    t = worker.ask(op="run", case=case, calls=1)["times"][0]
    return max(1, min(50, int(block_s / max(t, 1e-6))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="python interpreter that imports the old mixq build")
    p.add_argument("--after", default=sys.executable, help="python interpreter of the new build (default: this one)")
    p.add_argument("--groups", default="gemm,gemv,cnn,encoder", help="comma list of gemm, gemv, cnn, encoder, decoder (not in the default: 2 GB, a minute to pack)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds per case (default 9, 5 with --quick)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="fewer cases and rounds")
    p.add_argument("--json", metavar="PATH", help="write the per-case medians and ratios as JSON")
    args = p.parse_args(argv)
    rounds = args.rounds or (5 if args.quick else 9)
    groups = [g for g in args.groups.split(",") if g]
    # The before side imports its installed build: a PYTHONPATH pointing at a source tree is the after side's.
    before_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    sides = [Worker(args.before, "before", before_env), Worker(args.after, "after", dict(os.environ))]
    setup = [w.ask(op="setup", groups=groups, threads=args.threads, quick=args.quick) for w in sides]
    cases = [c for c in setup[0]["cases"] if c in setup[1]["cases"]]
    print(f"[ab] before: {setup[0]['version']}\n[ab] after:  {setup[1]['version']}\n[ab] {len(cases)} cases, "
          f"{rounds} rounds, {args.threads} threads", flush=True)
    rows = []
    print(f"{'case':<44}{'before ms':>11}{'after ms':>11}{'after/before':>14}{'range':>16}")
    for case in cases:
        calls = block_calls(sides[1], case, 0.1)
        per_round = {0: [], 1: []}
        for r in range(rounds):
            for i in (0, 1) if r % 2 == 0 else (1, 0):
                per_round[i].append(statistics.median(sides[i].ask(op="run", case=case, calls=calls)["times"]))
        before, after = (statistics.median(per_round[i]) for i in (0, 1))
        ratios = [a / b for a, b in zip(per_round[1], per_round[0])]
        rows.append(dict(case=case, before_s=before, after_s=after, ratio=after / before,
                         ratio_min=min(ratios), ratio_max=max(ratios)))
        print(f"{case:<44}{before * 1e3:>11.3f}{after * 1e3:>11.3f}{after / before:>14.3f}"
              f"{f'{min(ratios):.2f}-{max(ratios):.2f}':>16}", flush=True)
    for w in sides:
        w.close()
    ratios = [r["ratio"] for r in rows]
    if ratios:
        print(f"[ab] geometric mean after/before {statistics.geometric_mean(ratios):.3f} over {len(ratios)} cases "
              f"(< 1: after is faster)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"when": time.strftime("%Y-%m-%d %H:%M"), "threads": args.threads, "rounds": rounds,
                       "results": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
