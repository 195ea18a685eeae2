"""W2A8 decode GEMV (M = 1, u8 activations, 2-bit group-wise weights): the lookup-table kernel
(u2lut) against the u2 kernel of the same ISA level, interleaved in one process.

Cases: weights in L2 (one matrix of <= 0.6 MB), in L3 (one 2048 x 5632 matrix, ~3.4 MB) and from
DRAM (a cycle of distinct matrices >= 4x the L3 size). Per level (MIXQ_ISA values this CPU runs
from avx2 up) and thread count (1, 2): the two kernels are timed in alternating blocks of ~30 ms
(rotated order, >= ROUNDS rounds); the median time per call is reported, with the weight bytes
(PackedWeight.nbytes) per second. The path is forced with mixq._core.set_u2_lut("on" / "off").

    python bench/lut_gemv.py [--quick] [--json PATH] [--isa avx2,avx512,avx512vnni] [--group 64]
"""
import argparse
import json
import statistics
import time

import numpy as np

import mixq
from mixq import _core

ROUNDS = 9


def make_weights(rng, n, k, group, copies):
    codes = rng.integers(0, 4, (n, k), dtype=np.uint8)
    g = -(-k // group)
    scale = mixq.quant.weights.round_bf16(rng.uniform(0.01, 0.1, (n, g)))
    zp = rng.integers(0, 4, (n, g)).astype(np.uint8)
    return [mixq.pack_weights(codes, bits=2, group_size=group, scale=scale, zero_point=zp) for _ in range(copies)]


def time_block(x, ws, budget_s):
    """Median-free block: mean time per call over calls totalling ~budget_s (first call untimed)."""
    i = 0
    mixq.matmul(x, ws[i % len(ws)], x_scale=0.05, x_zero_point=3)
    calls, t0 = 0, time.perf_counter()
    while True:
        for _ in range(8):
            i += 1
            mixq.matmul(x, ws[i % len(ws)], x_scale=0.05, x_zero_point=3)
        calls += 8
        el = time.perf_counter() - t0
        if el >= budget_s:
            return el / calls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--isa", default=None)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--group", type=int, default=64)
    ap.add_argument("--where", default="L2,L3,DRAM", help="which cases: L2, L3, DRAM")
    args = ap.parse_args()
    rounds = 5 if args.quick else ROUNDS
    isas = args.isa.split(",") if args.isa else [i for i in mixq.available_isas() if i != "ref"]
    info = mixq.cpu_info()
    l3 = info.get("l3_bytes") or (32 << 20)
    rng = np.random.default_rng(7)
    cases = [("L2", 2048, 1024, 1), ("L2", 4096, 512, 1), ("L3", 2048, 5632, 1)]
    for n, k in [(5632, 2048), (11008, 4096)]:
        one = make_weights(rng, 32, k, args.group, 1)[0].nbytes * n / 32
        cases.append(("DRAM", k, n, max(2, int(np.ceil((2 if args.quick else 4) * l3 / one)))))
    cases = [c for c in cases if c[0] in args.where.split(",")]
    results = []
    print(f"{'level':11s} {'thr':>3s} {'where':5s} {'K':>5s} {'N':>6s} {'u2 us':>8s} {'lut us':>8s} "
          f"{'u2 GB/s':>8s} {'lut GB/s':>8s} {'lut/u2':>7s}  kernels")
    for where, k, n, copies in cases:
        ws = make_weights(rng, n, k, args.group, copies)
        x = rng.integers(0, 256, (1, k), dtype=np.uint8)
        nbytes = ws[0].nbytes
        for isa in isas:
            mixq.set_isa(isa)
            for threads in [int(t) for t in args.threads.split(",")]:
                mixq.set_num_threads(threads)
                names, times = {}, {"off": [], "on": []}
                for mode in ("off", "on"):  # outputs identical bit for bit (checked once here)
                    _core.set_u2_lut(mode)
                    y = mixq.matmul(x, ws[0], x_scale=0.05, x_zero_point=3)
                    names[mode] = mixq.last_kernel()
                    if mode == "off":
                        y_off = y
                    else:
                        assert np.array_equal(y.view(np.uint32), y_off.view(np.uint32)), (isa, k, n)
                order = ["off", "on"]
                for r in range(rounds):
                    for mode in (order if r % 2 == 0 else order[::-1]):
                        _core.set_u2_lut(mode)
                        times[mode].append(time_block(x, ws, 0.03 if where != "DRAM" else 0.06))
                _core.set_u2_lut("auto")
                t_off, t_on = statistics.median(times["off"]), statistics.median(times["on"])
                print(f"{isa:11s} {threads:3d} {where:5s} {k:5d} {n:6d} {t_off * 1e6:8.1f} {t_on * 1e6:8.1f} "
                      f"{nbytes / t_off / 1e9:8.1f} {nbytes / t_on / 1e9:8.1f} {t_on / t_off:7.3f}  "
                      f"{names['off']} / {names['on']}", flush=True)
                for mode, impl in (("off", "mixq-w2a8-u2"), ("on", "mixq-w2a8-u2lut")):
                    results.append({"case": f"gemv {where} M=1 N={n} K={k} g{args.group} {isa} {threads}t",
                                    "impl": impl, "kernel": names[mode], "median_s": statistics.median(times[mode]),
                                    "min_s": min(times[mode]), "ops": 2.0 * n * k, "bytes": nbytes})
    mixq.set_num_threads(info["threads"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": {"cpu": info.get("cpu", ""), "isa": info["isa"], "threads": info["threads"]},
                       "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
