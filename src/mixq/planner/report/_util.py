"""Small helpers shared by the report's markdown and plots: tolerant numbers, precision names."""
from __future__ import annotations

import math
import re

from ...quant import parse_precision
from ..roofline.machine import roof_field

# Fixed colors per precision family, so every plot of every report reads the same way.
PRECISION_COLORS = {
    "fp32": "#4c72b0",
    "bf16": "#8172b3",
    "w8a8": "#55a868",
    "w7a8": "#2e8b57",
    "w4a8": "#dd8452",
    "w2a8": "#c44e52",
    "w4a32": "#e5ae38",
    "w2a32": "#da8bc3",
}
_EXTRA_COLORS = ("#17becf", "#bcbd22", "#7f7f7f", "#8c564b", "#9467bd", "#2ca02c")
_BASE = re.compile(r"^(fp32|bf16|w\d+a\d+)", re.IGNORECASE)


def num(x) -> float | None:
    """x as a finite float, or None (for None, NaN, inf, or anything that is not a number)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def pos(x) -> float | None:
    """x as a finite float > 0, or None."""
    v = num(x)
    return v if v is not None and v > 0 else None


def fmt(x, spec: str = ".1f", missing: str = "-") -> str:
    v = num(x)
    return missing if v is None else format(v, spec)


def cell(text) -> str:
    """Text made safe for one markdown table cell."""
    s = "" if text is None else str(text)
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ").strip()


def base_precision(precision) -> str:
    """'w4a8-g128' -> 'w4a8'; unknown names are returned as given (lower case)."""
    s = str(precision or "").strip().lower()
    m = _BASE.match(s)
    return m.group(1) if m else s


def _table_entry(precision):
    try:
        return parse_precision(base_precision(precision)).entry
    except ValueError:
        return None


def weight_bits(precision) -> float | None:
    """Weight bits of a precision name: the precision table's, else read from names of other
    tools (fp16, int8, w3a16, ...); None when the name says nothing."""
    e = _table_entry(precision)
    if e is not None:
        return float(e.weight_bits)
    s = base_precision(precision)
    if s in ("fp32", "float32", "float", "f32"):
        return 32.0
    if s in ("bf16", "fp16", "float16", "half"):
        return 16.0
    m = re.match(r"^(?:w|int|uint|i|u)(\d+)", s)
    return float(m.group(1)) if m else None


def int8_activations(precision) -> bool:
    """True when the layer takes int8 (uint8) activations (w8a8, w4a8-g128; other tools' wNa8)."""
    e = _table_entry(precision)
    return e.int8_activations if e is not None else base_precision(precision).endswith("a8")


_OTHER_COLORS: dict[str, str] = {}  # unknown precision names, colored in order of appearance


def precision_color(precision) -> str:
    b = base_precision(precision)
    if b in PRECISION_COLORS:
        return PRECISION_COLORS[b]
    if b not in _OTHER_COLORS:
        _OTHER_COLORS[b] = _EXTRA_COLORS[len(_OTHER_COLORS) % len(_EXTRA_COLORS)]
    return _OTHER_COLORS[b]


def compute_roof_gops(machine: dict, precision) -> float | None:
    """GOPS roof of a precision from a machine dict, by mixq.planner.roofline's rule (roof_field)."""
    field = roof_field(base_precision(precision))
    if field == "peak_int8_narrow_gops" and not machine.get(field):  # a model from before it was measured
        field = "peak_int8_gops"
    return pos(machine.get(field))


def layer_time(side: dict) -> tuple[float | None, bool]:
    """(seconds, measured?) of one side (before/after) of a layer: measured_s when it is a
    positive number, else predicted_s."""
    m = pos(side.get("measured_s"))
    if m is not None:
        return m, True
    return pos(side.get("predicted_s")), False
