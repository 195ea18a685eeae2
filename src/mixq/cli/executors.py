"""`mixq search --executor local|ray [--address A] [--workers N]`: where the evaluations run."""
from __future__ import annotations

import argparse


def add_executor_args(parser: argparse.ArgumentParser, positive_int) -> None:
    g = parser.add_argument_group("where evaluations run")
    g.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: one after another in this process (default); ray: in parallel on a Ray cluster, "
                        "one worker per CPU, same answers and the same --cache (pip install \"mixq[ray]\")")
    g.add_argument("--address", help="with --executor ray: the cluster, 'auto' (started here by `ray start --head`), "
                                     "HOST:6379 or ray://HOST:10001; default $RAY_ADDRESS, else a local Ray for "
                                     "this run")
    g.add_argument("--workers", type=positive_int, help="with --executor ray: worker processes (default: the "
                                                        "cluster's CPUs)")


def executor_from_args(args):
    """"local" or a mixq.ray.RayExecutor; bad combinations and a missing Ray exit with the reason."""
    if args.executor != "ray":
        if args.address or args.workers:
            raise SystemExit("mixq search: --address and --workers need --executor ray")
        return "local"
    try:
        from ..ray import RayExecutor
        from ..ray.cluster import check_reachable

        executor = RayExecutor(address=args.address, workers=args.workers)
        if executor.address is not None:
            check_reachable(executor.address)  # before the model is captured and calibrated
        return executor
    except (ImportError, ValueError, ConnectionError) as e:
        raise SystemExit(f"mixq search: {e}") from None
