"""Arguments every benchmark takes, and the common start of a run."""
from __future__ import annotations

import argparse
import sys

from .machine import machine_info
from .peers import peers, set_threads
from .timing import warn_if_busy

DEFAULT_JSON = ""  # --json without a path: bench/results/<cpu-id>/<bench>.json (report.json_path)


def add_common(p: argparse.ArgumentParser, repeats: tuple[int, int] = (10, 3)) -> argparse.ArgumentParser:
    """repeats: the default timed rounds per case, without and with --quick."""
    p.add_argument("--quick", action="store_true", help="fewer cases/repeats (CI smoke run)")
    p.add_argument("--json", metavar="PATH", nargs="?", const=DEFAULT_JSON,
                   help="write machine info and results as JSON (no PATH: "
                        "bench/results/<cpu-id>/<bench>.json)")
    p.add_argument("--threads", type=int, default=2, help="threads for mixq and every peer")
    p.add_argument("--repeats", type=int, default=None,
                   help=f"timed rounds per case (default {repeats[0]}, {repeats[1]} with --quick)")
    p.set_defaults(repeats_default=repeats)
    return p


def finish_args(args: argparse.Namespace) -> argparse.Namespace:
    if args.repeats is None:
        full, quick = getattr(args, "repeats_default", (10, 3))
        args.repeats = quick if args.quick else full
    args.warmup = 1 if args.quick else 2
    args.min_time = 0.05 if args.quick else 0.25  # keep timing tiny cases a little longer
    return args


def parse_args(description: str, argv=None) -> argparse.Namespace:
    """The common arguments, plus warmup and min_time derived from --quick."""
    return finish_args(add_common(argparse.ArgumentParser(description=description)).parse_args(argv))


def start(doc: str, argv=None):
    """Common start of every benchmark: arguments (first line of the script's docstring as
    description), peers, one thread count for all, a busy-machine warning, the machine dict.
    Returns (args, peers, machine)."""
    args = parse_args(doc.splitlines()[0], argv)
    p = peers()
    set_threads(args.threads)
    warn_if_busy()
    return args, p, machine_info(args.threads)


def parse_models(argv, script: str, models) -> tuple[list, list[str]]:
    """Splits `--models LIST` (a comma-separated subset of `models`; default all) off argv:
    (the rest of argv, for start; the chosen models). Unknown names exit with status 2."""
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--models", default=",".join(models))
    ns, rest = extra.parse_known_args(argv)
    chosen = [m for part in ns.models.split(",") for m in part.split() if m]
    bad = [m for m in chosen if m not in models]
    if bad or not chosen:
        print(f"{script}: error: --models: unknown {bad or 'empty list'}; choose from {', '.join(models)}",
              file=sys.stderr)
        raise SystemExit(2)
    return rest, chosen


def start_with_models(doc: str, argv, script: str, models):
    """start() for a model benchmark (torch required) with a --models option: prints the run's
    header line; returns (args, peers, machine, chosen models)."""
    rest, chosen = parse_models(argv, script, models)
    try:
        args, p, machine = start(doc, rest)
    except SystemExit as e:
        if e.code == 0 and any(a in ("-h", "--help") for a in rest):
            print(f"\n{script} options:\n  --models LIST         comma-separated subset of "
                  f"{','.join(models)} (default: all)")
        raise
    if p["torch"] is None:
        raise SystemExit(f"bench/{script} needs torch (the models are torch modules): pip install .[bench]")
    if p["onnxruntime"] is not None:
        p["onnxruntime"].set_default_logger_severity(3)  # no per-initializer warnings
    print(f"[{script.removesuffix('.py')}] {machine['cpu']}, isa={machine['isa']}, threads={args.threads}, "
          f"repeats={args.repeats}{' (quick)' if args.quick else ''}; models: {', '.join(chosen)}")
    return args, p, machine, chosen
