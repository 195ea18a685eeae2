"""The default "why" of a layer's precision, derived from its numbers when the caller gives none.

`default_why(layers, i, machine)` applies these rules in order; the first that matches wins.
"time" is a side's ``measured_s`` when it is a positive number, else its ``predicted_s``;
"changed" means the precision name differs before and after; "faster"/"slower" need a ratio
beyond ``SAME_SPEED`` (5 %).

1. no time after, or no positive ``flops``      -> "no cost data"
2. time after < ``SMALL_LAYER_S`` (5 µs)        -> "too small: overhead dominates"
3. changed and slower, and the layer's activation type (int8 for ``*a8`` precisions, float
   otherwise) differs after from that of the layer before or after it in execution order
                                                -> "quantize overhead at a precision boundary"
4. changed and slower otherwise                 -> "slower at <after> than <before> (×r)"
5. changed, no time before                      -> "<before> → <after> (<bound>-bound, no time before)"
6. changed, same speed, compute-bound after     -> "compute-bound: lower bits add no speed"
7. changed, same speed, memory-bound after      -> "memory-bound: no measurable speed change"
   (bound unknown: "no measurable speed change")
8. changed and faster, memory-bound after       -> "memory-bound: ×b fewer weight bytes, ×s faster"
9. changed and faster, compute-bound after, activations went float -> int8
                                                -> "compute-bound: int8 roof, ×s faster"
10. changed and faster otherwise                -> "×s faster"
11. unchanged, compute-bound, int8 activations  -> "compute-bound: lower bits add no speed"
12. unchanged otherwise                         -> "kept at <precision> (<bound>-bound)"

"bound" is the layer's ``bound_after`` when given, else computed from the after side: compute when
AI ≥ compute roof(precision) / DRAM bandwidth (the roofline rule of mixq.planner.roofline.cost), memory
otherwise, unknown without a machine. Adjacent layers in execution order stand in for the graph's
edges in rule 3 (a branch may make a neighbour that is not a producer look like one).
"""
from __future__ import annotations

from ._util import compute_roof_gops, int8_activations, layer_time, pos

SMALL_LAYER_S = 5e-6
SAME_SPEED = 1.05


def bound_of(layer: dict, machine: dict) -> str | None:
    """'compute' | 'memory' after, from ``bound_after`` or the roofline rule; None if unknown."""
    b = layer.get("bound_after")
    if isinstance(b, str) and b.strip():
        return b.strip().lower()
    after = layer.get("after") or {}
    ai, roof, bw = pos(after.get("ai")), compute_roof_gops(machine or {}, after.get("precision")), \
        pos((machine or {}).get("dram_read_gbs"))
    if ai is None or roof is None or bw is None:
        return None
    return "compute" if ai >= roof / bw else "memory"


def _acts_after(layer) -> bool | None:
    if not isinstance(layer, dict):
        return None
    p = (layer.get("after") or {}).get("precision")
    return int8_activations(p) if p else None


def default_why(layers: list[dict], i: int, machine: dict | None = None) -> str:
    """The reason for layer `i`'s precision, from the rules in this module's docstring."""
    layer = layers[i]
    before, after = layer.get("before") or {}, layer.get("after") or {}
    t_b, _ = layer_time(before)
    t_a, _ = layer_time(after)
    if t_a is None or pos(layer.get("flops")) is None:
        return "no cost data"
    if t_a < SMALL_LAYER_S:
        return "too small: overhead dominates"
    p_b, p_a = before.get("precision"), after.get("precision")
    changed = str(p_b or "") != str(p_a or "")
    bound = bound_of(layer, machine or {})
    speed = t_b / t_a if t_b is not None else None
    if changed:
        if speed is not None and speed < 1 / SAME_SPEED:
            mine = _acts_after(layer)
            neighbours = [_acts_after(layers[j]) for j in (i - 1, i + 1) if 0 <= j < len(layers)]
            if mine is not None and any(n is not None and n != mine for n in neighbours):
                return "quantize overhead at a precision boundary"
            return f"slower at {p_a} than {p_b} (×{1 / speed:.2f})"
        if speed is not None and speed > SAME_SPEED:
            if bound == "memory":
                wb, wa = pos(before.get("weight_bytes")), pos(after.get("weight_bytes"))
                if wb is not None and wa is not None:
                    return f"memory-bound: ×{wb / wa:.1f} fewer weight bytes, ×{speed:.1f} faster"
                return f"memory-bound: ×{speed:.1f} faster"
            if bound == "compute" and int8_activations(p_a) and not int8_activations(p_b):
                return f"compute-bound: int8 roof, ×{speed:.1f} faster"
            return f"×{speed:.1f} faster"
        if speed is None:
            return f"{p_b} → {p_a} ({bound}-bound, no time before)" if bound else f"{p_b} → {p_a} (no time before)"
        if bound == "compute":
            return "compute-bound: lower bits add no speed"
        return "memory-bound: no measurable speed change" if bound == "memory" else "no measurable speed change"
    if bound == "compute" and int8_activations(p_a):
        return "compute-bound: lower bits add no speed"
    name = str(p_a) if p_a else "its precision"
    return f"kept at {name} ({bound}-bound)" if bound else f"kept at {name}"
