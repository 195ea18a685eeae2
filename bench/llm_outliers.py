"""Decode and prefill cost of outlier channels: a TinyLlama-1.1B-shaped W8A8 decoder with a share
(default 0.5 %) of every GEMM's input channels in fp32 beside the int8 GEMM, against plain W8A8.

Both plans are bench/llm.py's (random weights, layer 0 packed once and copied into each layer's
own memory); the outlier plan's channels are random, the same in every layer. Each round streams
both plans side by side (DecoderPlan.stream): the two --prompt token prefills, then their --new
greedy decode steps alternating step by step (the order flips every step), so the load other jobs
put on the shared machine hits both alike. Reported: medians over rounds per impl, and the median
of the step-by-step (prefill: round-by-round) time ratios with their quartiles.

Run:  python bench/llm_outliers.py [--quick] [--json [PATH]] [--fraction 0.005] [--prompt 32] [--new 32]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from harness.cli import add_common, finish_args
from harness.log import progress
from harness.machine import machine_info
from harness.peers import set_threads
from harness.report import Results, ratio, round_range_text, write_results
from harness.timing import warn_if_busy
from llm import mixq_plan, random_weights


def main(argv=None) -> int:
    ap = add_common(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    ap.add_argument("--fraction", type=float, default=0.005, help="share of each GEMM's input channels in fp32")
    ap.add_argument("--layers", type=int, default=22, help="decoder layers (22: TinyLlama-1.1B)")
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--new", type=int, default=32)
    args = finish_args(ap.parse_args(argv))
    if argv is None and "--repeats" not in sys.argv:
        args.repeats = 2 if args.quick else 5
    import mixq
    from mixq.models.llama import tiny_llama_1b

    set_threads(args.threads)
    mixq.set_num_threads(args.threads)
    warn_if_busy()
    machine = machine_info(args.threads)
    cfg = tiny_llama_1b(num_layers=args.layers)
    weights = random_weights(cfg)
    prompt = np.random.default_rng(1).integers(0, cfg.vocab_size, size=args.prompt)
    plain_name, split_name = "mixq-w8a8", f"mixq-w8a8+outliers-{100 * args.fraction:g}%"
    plans = {}
    for name, fraction in ((plain_name, 0.0), (split_name, args.fraction)):
        t0 = time.perf_counter()
        plans[name], wbytes = mixq_plan(cfg, weights, "w8a8", fraction)
        progress(f"[llm_outliers] {name}: packed {wbytes / 1e9:.3f} GB in {time.perf_counter() - t0:.0f} s", done=True)
    del weights
    names = list(plans)

    def round_(r):
        """(prefill s, decode s per token) per impl, decode steps interleaved one by one."""
        gens = {n: plans[n].stream(prompt, args.new) for n in names}
        pre, dec = {}, {n: [] for n in names}
        for i in range(len(names)):  # next() of a fresh stream: prefill and the first token
            n = names[(i + r) % len(names)]
            t0 = time.perf_counter()
            next(gens[n])
            pre[n] = time.perf_counter() - t0
        for step in range(args.new - 1):
            for i in range(len(names)):
                n = names[(i + step) % len(names)]
                t0 = time.perf_counter()
                next(gens[n])
                dec[n].append(time.perf_counter() - t0)
        return pre, dec

    round_(0)  # warm-up
    pre_t = {n: [] for n in names}
    dec_t = {n: [] for n in names}
    step_ratios = []  # plain step time / outlier step time, the same step of the same round
    for r in range(args.repeats):
        pre, dec = round_(r)
        for n in names:
            pre_t[n].append(pre[n])
            dec_t[n].append(statistics.median(dec[n]))
        step_ratios += [a / b for a, b in zip(dec[plain_name], dec[split_name])]

    results = Results()
    case_p = f"llm prefill TinyLlama-{cfg.num_layers}L prompt={args.prompt}"
    case_d = f"llm decode TinyLlama-{cfg.num_layers}L prompt={args.prompt} new={args.new}"
    print(f"\nTinyLlama-1.1B shape ({cfg.num_layers} layers), W8A8, {args.fraction:.2%} outlier channels per GEMM, "
          f"{args.prompt}-token prompt, {args.new} new tokens, {args.threads} threads, {args.repeats} rounds, "
          f"{machine['cpu']} ({machine['isa']})")
    print(f"{'impl':<32}{'prefill tok/s':>14}{'decode tok/s':>14}")
    for name in names:
        results.add(case_p, name, statistics.median(pre_t[name]), min(pre_t[name]), bytes=None, rounds=pre_t[name])
        results.add(case_d, name, statistics.median(dec_t[name]), min(dec_t[name]), bytes=None, rounds=dec_t[name])
        print(f"{name:<32}{args.prompt / results.get(case_p, name)['median_s']:>14.1f}"
              f"{1 / results.get(case_d, name)['median_s']:>14.1f}")
    q = statistics.quantiles(step_ratios, n=4)
    print(f"prefill: outliers / plain speed {ratio(results, case_p, split_name, plain_name):.3f}x"
          f"{round_range_text(results, case_p, split_name, plain_name)}")
    print(f"decode: outliers / plain speed {ratio(results, case_d, split_name, plain_name):.3f}x (medians of rounds)"
          f"{round_range_text(results, case_d, split_name, plain_name)}; step by step {q[1]:.3f}x "
          f"(quartiles {q[0]:.3f}-{q[2]:.3f}, {len(step_ratios)} paired steps)")
    write_results(args, "llm_outliers", machine, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
