"""The report's markdown: machine table, summary table, plot links, per-layer table, notes."""
from __future__ import annotations

from ._util import cell, fmt, layer_time, num, pos
from .why import bound_of, default_why

# (key, label, unit, format) of the machine table, in the order of mixq.planner.roofline.Machine.
MACHINE_ROWS = (
    ("cpu", "CPU", "", None),
    ("isa", "kernel ISA", "", None),
    ("threads", "threads", "", None),
    ("peak_int8_gops", "int8 peak (tight loop)", "GOPS", ".1f"),
    ("peak_int8_narrow_gops", "int8 peak on w7a8's narrow codes (tight loop)", "GOPS", ".1f"),
    ("peak_bf16_gflops", "bf16 peak (tight loop)", "GFLOPS", ".1f"),
    ("peak_fp32_gflops", "fp32 peak (tight loop)", "GFLOPS", ".1f"),
    ("gemm_int8_gops", "int8 GEMM (best measured)", "GOPS", ".1f"),
    ("gemm_fp32_gflops", "fp32 GEMM (best measured)", "GFLOPS", ".1f"),
    ("dram_read_gbs", "DRAM read", "GB/s", ".1f"),
    ("l3_read_gbs", "L3 read", "GB/s", ".1f"),
    ("l2_read_gbs", "L2 read", "GB/s", ".1f"),
    ("measured_at", "measured at", "", None),
)


def table(head: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> list[str]:
    """A GitHub markdown table (cells escaped); columns in `right` are right-aligned."""
    out = ["| " + " | ".join(cell(h) for h in head) + " |",
           "|" + "|".join("---:" if i in right else "---" for i in range(len(head))) + "|"]
    out += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return out


def machine_section(machine: dict) -> list[str]:
    lines = ["## Machine", ""]
    if not machine:
        return lines + ["_No machine model was given._", ""]
    rows = []
    for key, label, unit, spec in MACHINE_ROWS:
        if key not in machine:
            continue
        v = machine[key]
        text = (fmt(v, spec) if spec else ("-" if v in (None, "") else str(v)))
        rows.append([label, f"{text} {unit}".strip() if text != "-" else "-"])
    known = {k for k, *_ in MACHINE_ROWS}
    rows += [[str(k), "-" if v is None else str(v)] for k, v in machine.items() if k not in known]
    dram = pos(machine.get("dram_read_gbs"))
    for key, label in (("peak_int8_gops", "int8"), ("peak_fp32_gflops", "fp32")):
        peak = pos(machine.get(key))
        if peak is not None and dram is not None:
            rows.append([f"ridge point {label} (peak / DRAM)", f"{peak / dram:.1f} ops/byte"])
    return lines + table(["", "value"], rows) + [""]


def summary_section(summary: list[dict]) -> list[str]:
    lines = ["## Summary", ""]
    if not summary:
        return lines + ["_No summary rows were given._", ""]
    base = summary[0]
    base_lat = pos(base.get("latency_ms"))
    derived = False
    rows = []
    for r in summary:
        sp = num(r.get("speedup"))
        if sp is None and base_lat is not None and pos(r.get("latency_ms")) is not None:
            sp, derived = base_lat / pos(r.get("latency_ms")), True
        rows.append([str(r.get("config", "")), fmt(r.get("accuracy"), ".4f"), fmt(r.get("ai"), ".2f"),
                     fmt(r.get("latency_ms"), ".3f"), fmt(r.get("weight_mb"), ".3f"),
                     "-" if sp is None else f"{sp:.2f}×"])
    lines += table(["config", "accuracy", "model AI (ops/byte)", "latency (ms)", "weights (MB)", "speedup"],
                   rows, right={1, 2, 3, 4, 5})
    if derived:
        lines += ["", f"Speedup not given by the caller is latency of `{cell(base.get('config', ''))}` (the "
                  "first row) / latency of the row."]
    return lines + [""]


def _arrow(b: str, a: str) -> str:
    return b if b == a else f"{b} → {a}"


def _time_us(side: dict) -> str:
    t, measured = layer_time(side)
    if t is None:
        return "-"
    return f"{t * 1e6:.1f}" if measured else f"≈{t * 1e6:.1f}"


def layers_section(layers: list[dict], machine: dict) -> list[str]:
    lines = ["## Layers", ""]
    if not layers:
        return lines + ["_No layers were given._", ""]
    rows, any_default = [], False
    tot = {"flops": 0.0, "wb": 0.0, "wa": 0.0, "tb": 0.0, "ta": 0.0}
    complete = {"wb": True, "wa": True, "tb": True, "ta": True}
    predicted = {"tb": False, "ta": False}
    for i, layer in enumerate(layers):
        b, a = layer.get("before") or {}, layer.get("after") or {}
        pb, pa = str(b.get("precision") or "-"), str(a.get("precision") or "-")
        why = layer.get("why")
        if not (isinstance(why, str) and why.strip()):
            why, any_default = default_why(layers, i, machine) + " (*)", True
        prec = _arrow(pb, pa)
        rows.append([str(i), str(layer.get("name", "")), str(layer.get("kind", "")),
                     f"**{prec}**" if pb != pa else prec,
                     fmt(num(layer.get("flops")) / 1e6 if num(layer.get("flops")) is not None else None, ".2f"),
                     _arrow(fmt(_kb(b.get("weight_bytes")), ".1f"), fmt(_kb(a.get("weight_bytes")), ".1f")),
                     _arrow(fmt(b.get("ai"), ".1f"), fmt(a.get("ai"), ".1f")),
                     _arrow(_time_us(b), _time_us(a)),
                     bound_of(layer, machine) or "-", why])
        tot["flops"] += num(layer.get("flops")) or 0.0
        for key, side, field in (("wb", b, "weight_bytes"), ("wa", a, "weight_bytes")):
            v = num(side.get(field))
            complete[key] &= v is not None
            tot[key] += v or 0.0
        for key, side in (("tb", b), ("ta", a)):
            t, measured = layer_time(side)
            complete[key] &= t is not None
            predicted[key] |= t is not None and not measured
            tot[key] += t or 0.0

    def total(k, scale, spec):
        if not complete[k]:
            return "-"
        return ("≈" if predicted.get(k) else "") + format(tot[k] * scale, spec)

    rows.append(["", "**total**", "", "", f"{tot['flops'] / 1e6:.2f}",
                 _arrow(total("wb", 1e-3, ".1f"), total("wa", 1e-3, ".1f")), "",
                 _arrow(total("tb", 1e6, ".1f"), total("ta", 1e6, ".1f")), "", ""])
    lines += table(["#", "layer", "kind", "precision", "MFLOP", "weight KB", "AI (ops/byte)", "time (µs)",
                    "bound", "why"], rows, right={0, 4, 5, 6, 7})
    lines += ["", "Values read before → after; **bold**: precision changed. Time: measured, or ≈ predicted by "
              "the roofline when not measured (a total with any predicted part is marked ≈). Bound: after, on the roofline."]
    if any_default:
        lines += ["", "(*) reason derived from the numbers (rules in `mixq.planner.report.why`); the caller gave none."]
    return lines + [""]


def _kb(v):
    v = num(v)
    return None if v is None else v / 1e3
