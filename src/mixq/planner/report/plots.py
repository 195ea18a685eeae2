"""The report's PNG plots, drawn with matplotlib's object API on the Agg canvas.

matplotlib is imported inside `require_matplotlib()` only, so `import mixq` (and `import
mixq.planner.report`) never needs it. No pyplot: figures are built as `Figure` objects on a
`FigureCanvasAgg`, so the caller's backend and pyplot state are left alone and nothing leaks.

Each `plot_*` function returns `(drawn, note)`: whether the file was written and a sentence for
the markdown (what was left out, or why nothing was drawn).
"""
from __future__ import annotations

import math
from pathlib import Path

from ._util import PRECISION_COLORS, base_precision, layer_time, num, pos, precision_color, weight_bits

INSTALL_HINT = 'pip install "mixq[report]"'
DPI = 110


class MissingMatplotlibError(ImportError):
    """matplotlib is needed to draw the report and is not installed."""


def require_matplotlib():
    """(Figure, FigureCanvasAgg, Line2D, Patch), or MissingMatplotlibError naming the install command."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
    except ImportError as e:
        raise MissingMatplotlibError(
            "mixq.planner.report draws its plots with matplotlib, which is not installed (or fails to import: "
            f"{e}). Install it with: {INSTALL_HINT}") from e
    return Figure, FigureCanvasAgg, Line2D, Patch


def _figure(width: float, height: float):
    Figure, FigureCanvasAgg, _, _ = require_matplotlib()
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=DPI, format="png")


def _span(values: list[float], pad: float, fallback: tuple[float, float], min_ratio: float) -> tuple[float, float]:
    """Log-axis limits around positive values, at least `min_ratio` wide."""
    vals = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    if not vals:
        return fallback
    lo, hi = min(vals) / pad, max(vals) * pad
    if hi / lo < min_ratio:
        mid = math.sqrt(lo * hi)
        lo, hi = mid / math.sqrt(min_ratio), mid * math.sqrt(min_ratio)
    return lo, hi


def _precision_handles(precisions: list[str]):
    _, _, _, Patch = require_matplotlib()
    known = list(PRECISION_COLORS)  # widest first: fp32, bf16, w8a8, ...
    names = sorted({base_precision(p) for p in precisions} - {""},
                   key=lambda b: (known.index(b) if b in known else len(known), b))
    return [Patch(facecolor=precision_color(b), edgecolor="black", linewidth=0.5, label=b) for b in names]


# --------------------------------------------------------------------------------------------
# roofline.png


def _layer_point(layer: dict, side: str):
    """(ai, achieved GOPS, measured?) of a layer side, or None when it cannot be placed on log axes."""
    s = layer.get(side) or {}
    ai, flops = pos(s.get("ai")), pos(layer.get("flops"))
    t, measured = layer_time(s)
    if ai is None or flops is None or t is None:
        return None
    return ai, flops / t / 1e9, measured


def plot_roofline(path: Path, machine: dict, layers: list[dict], top: int = 10) -> tuple[bool, str]:
    _, _, Line2D, _ = require_matplotlib()
    dram = pos(machine.get("dram_read_gbs"))
    peaks = [("int8 peak", pos(machine.get("peak_int8_gops")), "GOPS", "-", 2.0),
             ("fp32 peak", pos(machine.get("peak_fp32_gflops")), "GFLOPS", "-", 2.0)]
    if any(base_precision((l.get(s) or {}).get("precision")) == "bf16" for l in layers for s in ("before", "after")):
        peaks.append(("bf16 peak", pos(machine.get("peak_bf16_gflops")), "GFLOPS", "-", 1.2))
    peaks += [("int8 GEMM (best)", pos(machine.get("gemm_int8_gops")), "GOPS", ":", 1.2),
              ("fp32 GEMM (best)", pos(machine.get("gemm_fp32_gflops")), "GFLOPS", ":", 1.2)]
    peaks = [p for p in peaks if p[1] is not None]
    caches = [(name, pos(machine.get(key))) for name, key in (("L3", "l3_read_gbs"), ("L2", "l2_read_gbs"))]
    caches = [c for c in caches if c[1] is not None]

    pts = [(layer, _layer_point(layer, "before"), _layer_point(layer, "after")) for layer in layers]
    placed = [(l, b, a) for l, b, a in pts if b is not None or a is not None]
    if not peaks and dram is None and not placed:
        return False, ("roofline.png not drawn: the machine model has no positive peak or bandwidth and no layer "
                       "has an arithmetic intensity and a time.")
    top_peak = max((p[1] for p in peaks), default=None)
    bws = [dram] + [c[1] for c in caches] if dram is not None else [c[1] for c in caches]
    ridges = [p[1] / bw for p in peaks for bw in bws]
    xs = [p[0] for _, b, a in placed for p in (b, a) if p is not None]
    ys = [p[1] for _, b, a in placed for p in (b, a) if p is not None]
    x0, x1 = _span(xs + ridges, 4.0, (0.1, 1e4), 1e3)
    y0, y1 = _span(ys + [p[1] for p in peaks], 3.0, (0.1, 1e3), 1e2)

    fig = _figure(9.5, 6.0)
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.set_yscale("log")
    roof_colors = {"int8 peak": "#2f6b2f", "fp32 peak": "#1f3f7a", "bf16 peak": "#5b3f8c",
                   "int8 GEMM (best)": "#2f6b2f", "fp32 GEMM (best)": "#1f3f7a"}
    for name, value, unit, style, lw in peaks:
        start = value / dram if dram is not None else x0
        ax.plot([max(start, x0), x1], [value, value], linestyle=style, linewidth=lw,
                color=roof_colors.get(name, "black"), label=f"{name} {value:.0f} {unit}")
    if dram is not None:
        end = top_peak / dram if top_peak is not None else x1
        ax.plot([x0, end], [dram * x0, dram * end], color="black", linewidth=2.0,
                label=f"DRAM read {dram:.1f} GB/s")
    for (name, bw), style in zip(caches, ("--", "-.")):
        end = top_peak / bw if top_peak is not None else x1
        ax.plot([x0, end], [bw * x0, bw * end], color="gray", linewidth=1.2, linestyle=style,
                label=f"{name} read {bw:.0f} GB/s")

    precisions = []
    for layer, b, a in placed:
        pb = (layer.get("before") or {}).get("precision")
        pa = (layer.get("after") or {}).get("precision")
        if b is not None:
            ax.scatter([b[0]], [b[1]], s=36, facecolors="none", edgecolors=precision_color(pb), linewidths=1.4,
                       zorder=3)
            precisions.append(pb)
        if a is not None:
            ax.scatter([a[0]], [a[1]], s=36, color=precision_color(pa), edgecolors="black", linewidths=0.5,
                       zorder=4)
            precisions.append(pa)
    biggest = sorted((t for t in placed if t[1] is not None and t[2] is not None),
                     key=lambda t: -(pos(t[0].get("flops")) or 0.0))[:top]
    for layer, b, a in biggest:
        if (b[0], b[1]) != (a[0], a[1]):
            ax.annotate("", xy=(a[0], a[1]), xytext=(b[0], b[1]),
                        arrowprops=dict(arrowstyle="->", color="#555555", linewidth=0.8, shrinkA=3, shrinkB=3))
        ax.annotate(str(layer.get("name", "")), (a[0], a[1]), xytext=(4, 3), textcoords="offset points",
                    fontsize=6, color="#333333")

    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("arithmetic intensity (ops/byte)")
    ax.set_ylabel("achieved GOPS (FLOPs / time)")
    threads = machine.get("threads")
    ax.set_title(f"Roofline: {machine.get('cpu') or 'machine'}"
                 + (f", {threads} threads" if threads not in (None, "") else ""), fontsize=10)
    ax.grid(True, which="both", linewidth=0.3, alpha=0.5)
    handles, _ = ax.get_legend_handles_labels()
    handles += _precision_handles(precisions)
    if placed:
        handles += [Line2D([], [], marker="o", linestyle="", markerfacecolor="none", markeredgecolor="black",
                           label="before (hollow)"),
                    Line2D([], [], marker="o", linestyle="", color="black", label="after (filled)")]
        if biggest:
            handles.append(Line2D([], [], color="#555555", linewidth=0.8,
                                  label=f"before → after, {len(biggest)} biggest layers"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    _save(fig, path)
    left_out = len(layers) - len(placed)
    note = "Hollow markers: before; filled: after; achieved GOPS = FLOPs / measured time (predicted when not measured)."
    if left_out:
        note += f" {left_out} layer(s) without AI or time are not drawn."
    return True, note


# --------------------------------------------------------------------------------------------
# pareto_ai.png, pareto_latency.png

_FRONT_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def _front_x(point: dict, axis: str) -> float | None:
    if axis == "ai":
        return pos(point.get("ai"))
    s = pos(point.get("latency_s"))
    return s * 1e3 if s is not None else None


def _summary_x(row: dict, axis: str) -> float | None:
    return pos(row.get("ai")) if axis == "ai" else pos(row.get("latency_ms"))


def plot_pareto(path: Path, fronts: dict, summary: list[dict], axis: str) -> tuple[bool, str]:
    """Accuracy against model AI (axis='ai') or latency in ms (axis='latency')."""
    _, _, Line2D, _ = require_matplotlib()
    fname = path.name
    total = sum(len(p or []) for p in fronts.values())
    series = []
    for name, points in fronts.items():
        good = [(x, num(p.get("accuracy")), p) for p in (points or []) if isinstance(p, dict)
                for x in [_front_x(p, axis)] if x is not None and num(p.get("accuracy")) is not None]
        series.append((str(name), good))
    drawn = sum(len(g) for _, g in series)
    if drawn == 0:
        if total == 0:
            return False, f"{fname} not drawn: there are no front points."
        what = "a latency (latency_s is None)" if axis == "latency" else "an accuracy and a model AI"
        return False, f"{fname} not drawn: none of the {total} front points has {what}."
    refs = [(x, num(r.get("accuracy")), r) for r in summary if isinstance(r, dict)
            for x in [_summary_x(r, axis)] if x is not None and num(r.get("accuracy")) is not None]

    fig = _figure(8.5, 5.5)
    ax = fig.add_subplot()
    allx = [x for _, g in series for x, _, _ in g] + [x for x, _, _ in refs]
    if max(allx) / min(allx) > 20:
        ax.set_xscale("log")
    handles = []
    for k, (name, good) in enumerate(series):
        if not good:
            continue
        color = _FRONT_COLORS[k % len(_FRONT_COLORS)]
        on = sorted((t for t in good if t[2].get("on_front")), key=lambda t: t[0])
        off = [t for t in good if not t[2].get("on_front")]
        if off:
            ax.scatter([t[0] for t in off], [t[1] for t in off], s=20, color=color, alpha=0.3, linewidths=0)
        if on:
            ax.plot([t[0] for t in on], [t[1] for t in on], marker="o", markersize=4.5, color=color, linewidth=1.4)
            if len(on) <= 15:
                for x, y, p in on:
                    if p.get("label"):
                        ax.annotate(str(p["label"]), (x, y), xytext=(3, 3), textcoords="offset points",
                                    fontsize=6, color=color)
        handles.append(Line2D([], [], marker="o", color=color, label=f"{name} ({len(on)} on front, {len(off)} dominated)"))
    if refs:
        ax.scatter([t[0] for t in refs], [t[1] for t in refs], marker="*", s=90, color="black", zorder=5)
        for x, y, r in refs:
            ax.annotate(str(r.get("config", "")), (x, y), xytext=(4, -9), textcoords="offset points", fontsize=7)
        handles.append(Line2D([], [], marker="*", linestyle="", color="black", markersize=9, label="summary configs"))
    ax.set_xlabel("model arithmetic intensity (ops/byte)" if axis == "ai" else "latency (ms)")
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy vs model arithmetic intensity" if axis == "ai" else "Accuracy vs latency", fontsize=10)
    ax.grid(True, which="both", linewidth=0.3, alpha=0.5)
    ax.legend(handles=handles, fontsize=7, loc="best")
    _save(fig, path)
    note = "Front points are connected; dominated points are faded; stars are the summary configs."
    if drawn < total:
        what = "latency" if axis == "latency" else "accuracy or model AI"
        note += f" {total - drawn} of {total} front points have no {what} and are not drawn."
    return True, note


# --------------------------------------------------------------------------------------------
# precision.png


def plot_precision(path: Path, layers: list[dict]) -> tuple[bool, str]:
    _, _, _, Patch = require_matplotlib()
    if not layers:
        return False, "precision.png not drawn: there are no layers."
    n = len(layers)
    fig = _figure(min(30.0, max(8.0, 0.22 * n + 2.5)), 5.5)
    ax = fig.add_subplot()
    ax.set_yscale("log", base=2)
    precisions, changed_x = [], []
    unknown = 0
    for i, layer in enumerate(layers):
        pb = (layer.get("before") or {}).get("precision")
        pa = (layer.get("after") or {}).get("precision")
        bits = weight_bits(pa)
        if bits is None:
            unknown += 1
            continue
        precisions.append(pa)
        ax.bar(i, bits - 1, bottom=1, width=0.8, color=precision_color(pa), edgecolor="black", linewidth=0.4)
        if pb is not None and str(pb) != str(pa):
            bb = weight_bits(pb)
            if bb is not None:  # the before precision as a dashed outline around / inside the bar
                changed_x.append(i)
                ax.bar(i, bb - 1, bottom=1, width=0.8, fill=False, edgecolor="black", linestyle="--",
                       linewidth=1.0, zorder=3)
            ax.annotate(f"{pb}→{pa}", (i, max(bits, bb or 0)), xytext=(0, 3), textcoords="offset points",
                        rotation=90, ha="center", va="bottom", fontsize=6)
    ax.set_ylim(1, 256 if changed_x else 48)
    ax.set_yticks([2, 4, 8, 16, 32])
    ax.set_yticklabels(["2", "4", "8", "16", "32"])
    ax.set_ylabel("weight bits after")
    step = max(1, math.ceil(n / 80))
    ax.set_xticks(list(range(0, n, step)))
    ax.set_xticklabels([str(layers[i].get("name", i)) for i in range(0, n, step)], rotation=90,
                       fontsize=7 if n <= 40 else 5)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xlabel("layer (execution order)")
    ax.set_title("Weight precision per layer", fontsize=10)
    ax.grid(True, axis="y", linewidth=0.3, alpha=0.5)
    handles = _precision_handles(precisions)
    if changed_x:
        handles.append(Patch(fill=False, edgecolor="black", linestyle="--", label="bits before (changed layers)"))
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    _save(fig, path)
    note = "Bar height: weight bits after; changed layers are annotated before→after."
    if unknown:
        note += f" {unknown} layer(s) with an unknown precision have no bar."
    return True, note
