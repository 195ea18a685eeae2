"""The ``mixq`` command.

    mixq demo      a short GEMM demo: one layer at fp32, bf16, int8 and int4, timed against numpy
    mixq machine   the CPU, the kernel path in use and its measured compute peaks
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from . import kernels


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def cmd_demo(args) -> int:
    rng = np.random.default_rng(args.seed)
    m, n, k = args.m, args.n, args.k
    w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    exact = x.astype(np.float64) @ w.T.astype(np.float64) + bias
    print(f"mixq GEMM demo: y = relu(x @ W.T + b), x [{m}, {k}], W [{n}, {k}], "
          f"{kernels.get_num_threads()} threads, ISA {kernels.cpu_info()['isa']}")
    rows = []
    variants = (("mixq fp32", dict(bits=32), "int8"), ("mixq bf16", dict(bits=16), "int8"),
                ("mixq w8a8 (dynamic)", dict(bits=8), "int8"),
                ("mixq w4a8 g128", dict(bits=4, group_size=128), "int8"),
                ("mixq w4a32 g128", dict(bits=4, group_size=128), "fp32"))
    for label, pack_kw, act in variants:
        p = kernels.pack_weights(w, **pack_kw)
        rows.append((label, p, (lambda p=p, act=act: kernels.matmul(x, p, bias, activation="relu", act=act)),
                     p.nbytes))
    # numpy last: its BLAS threads keep spinning after a call and would slow whatever runs next.
    rows.append(("numpy fp32", None, lambda: np.maximum(x @ w.T + bias, 0), w.nbytes))
    ops = 2.0 * m * n * k
    print(f"{'path':<22}{'kernel':<36}{'ms':>9}{'GOPS':>9}{'weight MB':>11}{'max rel err':>13}")
    for label, p, fn, nbytes in rows:
        sec = _median_seconds(fn, args.repeats)
        kernel = kernels.last_kernel() if p is not None else "-"
        err = np.abs(fn() - np.maximum(exact, 0)).max() / np.abs(exact).max()
        print(f"{label:<22}{kernel:<36}{sec * 1e3:>9.3f}{ops / sec / 1e9:>9.1f}{nbytes / 1e6:>11.2f}{err:>13.2e}")
    return 0


def cmd_machine(args) -> int:
    info = kernels.cpu_info()
    peaks = {}
    for kind in ("int8", "fp32", "bf16"):
        try:
            peaks[kind] = round(kernels.measure_peak(kind, args.seconds), 1)
        except ValueError as e:  # no such unit on this CPU / path
            peaks[kind] = None
            print(f"note: {e}", file=sys.stderr)
    info["peak_gops"] = peaks
    info["dram_read_gbs"] = round(kernels.measure_bandwidth(), 1)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    feats = ", ".join(k for k, v in info["features"].items() if v) or "none"
    print(f"ISA in use      {info['isa']} (available: {', '.join(info['available_isas'])})")
    print(f"features        {feats}")
    print(f"kernels         " + ", ".join(info["kernels"].values()))
    print(f"caches          L1d {info['l1d_bytes'] >> 10} KiB, L2 {info['l2_bytes'] >> 10} KiB, "
          f"L3 {info['l3_bytes'] >> 20} MiB")
    print(f"threads         {info['threads']} (physical cores {info['physical_cores']})")
    for kind, v in peaks.items():
        print(f"peak {kind:<10} {'n/a' if v is None else f'{v:.0f} GOPS'}")
    print(f"DRAM read       {info['dram_read_gbs']:.1f} GB/s")
    return 0


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mixq", description="Fast mixed-precision quantized inference on CPUs.")
    p.add_argument("--threads", type=positive_int, default=None, help="threads for the core (default: physical cores)")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run a short GEMM demo (fp32, bf16, int8, int4) and compare with numpy",
                       description="Packs one random layer at fp32, bf16, int8 and int4, runs "
                                   "y = relu(x @ W.T + b) on each, and prints time, throughput, weight memory "
                                   "and error vs float64.")
    d.add_argument("--m", type=positive_int, default=256, help="rows of x (batch x tokens)")
    d.add_argument("--n", type=positive_int, default=1024, help="output features")
    d.add_argument("--k", type=positive_int, default=1024, help="input features")
    d.add_argument("--repeats", type=positive_int, default=20, help="timed runs per path (median reported)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=cmd_demo)
    mch = sub.add_parser("machine", help="CPU features, kernel path, measured compute peaks and bandwidth",
                         description="Prints the detected CPU features, the kernels in use, the compute "
                                     "roof measured by tight loops of the core and the DRAM read bandwidth "
                                     "measured by a streaming read, at the current thread count.")
    mch.add_argument("--seconds", type=float, default=0.3, help="measuring time per peak")
    mch.add_argument("--json", action="store_true", help="print JSON")
    mch.set_defaults(func=cmd_machine)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        kernels.set_num_threads(args.threads)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
