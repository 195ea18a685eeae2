"""Writes the markdown summary of each CPU's results: bench/results/<cpu-id>/README.md, generated
from the <bench>.json files in that folder (one table per bench, mixq beside the peers).

    python bench/summarize.py [--results DIR]

Per case, every impl's median (and min) time, GOPS where the JSON has ops, and for mixq rows the
speed-up over the fastest peer of the same kind: impls with int8 activations (mixq-*a8*) against
the integer peers (int8 / int_mm / MatMulInteger / MatMulNBits / dynint8 / llama.cpp rows), the
others against the float peers; if a case has no peer of that kind, against every peer. Where the
rows carry per-round medians (round_s) the ratio's range over the interleaved rounds is given too.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.machine import RESULTS_DIR  # noqa: E402
from harness.report import Results, is_mixq, round_ratio_range  # noqa: E402

ORDER = ["gemm", "gemv", "e2e", "bert", "aiq"]  # others follow in name order
RUN = {"gemm": "python bench/gemm.py --json", "gemv": "python bench/gemv.py --json",
       "e2e": "python bench/e2e.py --json", "bert": "python bench/bert.py --json",
       "aiq": "python bench/aiq.py --json", "search_throughput": "python bench/search_throughput.py --json"}
# llamacpp: its quantized formats multiply with int8-quantized activations (Q8_0 / Q8_K blocks)
INT_PEER_MARKS = ("int8", "int_mm", "integer", "nbits", "u8s8", "llamacpp")


def int_activations(impl: str) -> bool:
    """Whether an impl computes with integer activations (so compares with the integer peers)."""
    if is_mixq(impl):
        return "a8" in impl
    return any(mark in impl for mark in INT_PEER_MARKS)


def best_peer(results: Results, case: str, impl: str) -> dict | None:
    """The fastest peer row of `case` of the same kind as impl (any peer if none is)."""
    peers = [r for r in results.rows if r["case"] == case and not is_mixq(r["impl"])]
    same = [r for r in peers if int_activations(r["impl"]) == int_activations(impl)]
    pool = same or peers
    return min(pool, key=lambda r: r["median_s"]) if pool else None


def fmt_time(s: float) -> str:
    ms = s * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


def machine_line(m: dict) -> str:
    parts = [f"{m.get('cpu')}", f"isa {m.get('isa')}", f"{m.get('threads')} threads"]
    if m.get("peak_int8_gops"):
        parts.append(f"int8 peak {m['peak_int8_gops']:.0f} GOPS")
    if m.get("peak_fp32_gflops"):
        parts.append(f"fp32 peak {m['peak_fp32_gflops']:.0f} GFLOPS")
    if m.get("dram_read_gbs"):
        parts.append(f"DRAM read {m['dram_read_gbs']:.1f} GB/s")
    return ", ".join(parts)


CONTRACT_KEYS = {"case", "impl", "median_s", "min_s", "ops", "bytes", "round_s"}


def fmt_extra(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else "" if v is None else str(v)


def record_table(name: str, data: dict) -> list[str]:
    """A JSON of measurements that are not timed cases (llm_accuracy: perplexity per precision):
    its rows as they are, one column per key."""
    rows = data["results"]
    head = list(dict.fromkeys(k for r in rows for k in r))
    lines = [f"## {name}", "", f"{machine_line(data['machine'])}.", "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(fmt_extra(r.get(k)) for k in head) + " |" for r in rows]
    return lines + [""]


def bench_table(name: str, data: dict) -> list[str]:
    """The markdown section of one bench: columns that no row fills are left out; keys a bench
    adds to its rows beyond the contract (aiq: accuracy, ...) get columns of their own."""
    if any("case" not in r or "median_s" not in r for r in data["results"]):
        return record_table(name, data)
    results = Results()
    results.rows = data["results"]
    gbs = name == "gemv"  # bytes = weights streamed per call: GB/s is the figure of merit
    extra = list(dict.fromkeys(k for r in results.rows for k in r if k not in CONTRACT_KEYS))
    table = []
    for case in dict.fromkeys(r["case"] for r in results.rows):
        for r in (r for r in results.rows if r["case"] == case):
            row = {"case": case, "impl": r["impl"], "median ms": fmt_time(r["median_s"]),
                   "min ms": fmt_time(r["min_s"]),
                   "GOPS": f"{r['ops'] / r['median_s'] / 1e9:.1f}" if r.get("ops") else "",
                   "GB/s": f"{r['bytes'] / r['median_s'] / 1e9:.1f}" if gbs and r.get("bytes") else "",
                   "weights MB": f"{r['bytes'] / 1e6:.1f}" if r.get("bytes") else ""}
            row.update({k: fmt_extra(r.get(k)) for k in extra})
            ref = best_peer(results, case, r["impl"]) if is_mixq(r["impl"]) else None
            text = ""
            if ref is not None:
                text = f"**{ref['median_s'] / r['median_s']:.2f}x** {ref['impl']}"
                rng = round_ratio_range(results, case, r["impl"], ref["impl"])
                text += f" (rounds {rng[0]:.2f}-{rng[1]:.2f}x)" if rng else ""
            row["vs fastest peer of its kind"] = text
            table.append(row)
    head = [h for h in table[0] if h in ("case", "impl") or any(t[h] for t in table)]
    lines = [f"## {name}", "", f"`{RUN.get(name, f'python bench/{name}.py --json')}`: {machine_line(data['machine'])}.", "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(t[h] for h in head) + " |" for t in table]
    return lines + [""]


def summarize(folder: Path) -> Path | None:
    """Writes folder/README.md from folder/*.json; returns its path (None without JSON files)."""
    files = sorted(folder.glob("*.json"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER), p.stem))
    if not files:
        return None
    lines = [f"# Benchmark results: {folder.name}", "",
             "Generated by `python bench/summarize.py` from the JSON files in this folder; do not edit.",
             "Times are medians of interleaved rounds in one process (min = fastest single run); "
             "\"vs fastest peer of its kind\" is that peer's median / the mixq row's median "
             "(> 1: mixq faster), against integer peers for int8-activation rows and float peers "
             "otherwise. Compare ratios, not absolute times, across runs: see bench/README.md.", ""]
    for f in files:
        lines += bench_table(f.stem, json.loads(f.read_text()))
    out = folder / "README.md"
    out.write_text("\n".join(lines))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default=str(RESULTS_DIR), help="the results root (default: bench/results)")
    args = p.parse_args(argv)
    for folder in sorted(Path(args.results).iterdir()):
        if folder.is_dir():
            out = summarize(folder)
            if out:
                print(f"[summarize] wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
