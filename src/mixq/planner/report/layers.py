"""Building the report's per-layer rows from the roofline cost model (mixq.planner.roofline.OpCost)."""
from __future__ import annotations

from collections.abc import Mapping

_WEIGHTED = ("conv", "linear", "depthwise")
_SIDE_KEYS = ("precision", "weight_bytes", "act_bytes", "ai", "measured_s", "predicted_s")


def _as_dict(c) -> dict:
    if isinstance(c, Mapping):
        d = dict(c)
        if "ai" not in d:
            b = (d.get("weight_bytes") or 0) + (d.get("act_bytes") or 0)
            d["ai"] = d.get("flops", 0.0) / b if b else 0.0
        return d
    return c.to_dict()


def layers_from_costs(before, after, why: Mapping[str, str] | None = None) -> list[dict]:
    """The `layers` argument of write_report from two cost lists of the same model (OpCost objects
    or their to_dict()), e.g. `Profile.ops` of the plan before and after the search.

    Ops are paired by name, in the order of `after`; ops without weights (add, pool, act) are left
    out. `bound_after` is the after op's roofline bound; `why` maps layer names to reasons (a
    layer without one gets the default reason in the report). Raises ValueError when a layer of
    `after` is missing from `before`."""
    prev = {d["name"]: d for d in map(_as_dict, before)}
    rows = []
    for a in map(_as_dict, after):
        if a.get("kind") not in _WEIGHTED:
            continue
        b = prev.get(a["name"])
        if b is None:
            raise ValueError(f"layer {a['name']!r} of the after costs is not in the before costs")
        row = dict(name=a["name"], kind=a["kind"], flops=a.get("flops"),
                   before={k: b.get(k) for k in _SIDE_KEYS}, after={k: a.get(k) for k in _SIDE_KEYS},
                   bound_after=a.get("bound") if a.get("bound") in ("compute", "memory") else None)
        if why and why.get(a["name"]):
            row["why"] = why[a["name"]]
        rows.append(row)
    return rows
