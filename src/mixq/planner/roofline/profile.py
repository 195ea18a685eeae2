"""mixq.profile: the per-layer roofline table of a model at a precision config."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cost import OpCost, model_totals, plan_costs
from .machine import Machine, machine as get_machine


@dataclass
class Profile:
    ops: list[OpCost]
    batch: int
    machine: Machine | None

    @property
    def totals(self) -> dict:
        t = model_totals(self.ops)
        measured = [c.measured_s for c in self.ops]
        t["measured_s"] = sum(measured) if all(m is not None for m in measured) else None
        return t

    def layers(self) -> list[OpCost]:
        """The ops with weights (conv, linear, depthwise)."""
        return [c for c in self.ops if c.kind in ("conv", "linear", "depthwise")]

    def to_dict(self) -> dict:
        return dict(batch=self.batch, machine=self.machine.to_dict() if self.machine else None,
                    ops=[c.to_dict() for c in self.ops], totals=self.totals)

    def table(self, all_ops: bool = False) -> str:
        rows = self.ops if all_ops else self.layers()
        head = ("layer", "op", "precision", "out HxWxC", "MFLOP", "w KB", "act KB", "AI w", "AI", "bound",
                "pred us", "meas us")
        lines = [head]
        for c in rows:
            lines.append((c.name, c.kind, c.precision, "x".join(map(str, c.out_shape)), f"{c.flops / 1e6:.1f}",
                          f"{c.weight_bytes / 1e3:.1f}", f"{c.act_bytes / 1e3:.1f}", f"{c.ai_weights:.1f}",
                          f"{c.ai:.1f}", c.bound, f"{c.predicted_s * 1e6:.1f}",
                          "-" if c.measured_s is None else f"{c.measured_s * 1e6:.1f}"))
        t = self.totals
        meas = "-" if t["measured_s"] is None else f"{t['measured_s'] * 1e6:.1f}"
        lines.append(("total", "", "", "", f"{t['flops'] / 1e6:.1f}", f"{t['weight_bytes'] / 1e3:.1f}",
                      f"{t['act_bytes'] / 1e3:.1f}", f"{t['ai_weights']:.1f}", f"{t['ai']:.1f}", "",
                      f"{t['predicted_s'] * 1e6:.1f}", meas))
        widths = [max(len(str(r[i])) for r in lines) for i in range(len(head))]
        fmt = lambda r: "  ".join(str(v).ljust(w) if i < 4 else str(v).rjust(w)  # noqa: E731
                                  for i, (v, w) in enumerate(zip(r, widths)))
        return "\n".join(fmt(r) for r in lines)


def profile_plan(plan, x, machine: Machine | None = None, measure: bool = True, repeats: int = 5) -> Profile:
    """Costs of a compiled plan for input x (NCHW), with measured per-op times if `measure`."""
    x = np.asarray(x, dtype=np.float32)
    batch = 1 if x.ndim == 3 else x.shape[0]
    costs = plan_costs(plan.spec, batch, machine)
    if measure:
        for c, m in zip(costs, plan.profile(x, repeats=repeats)):
            c.measured_s = m["seconds"]
    return Profile(costs, batch, machine)


def profile(model, example_input, config=None, calibration=None, *, machine: Machine | None = None,
            measure: bool = True, repeats: int = 5, **compile_kw) -> Profile:
    """Per-layer roofline profile of `model` compiled at `config` (see mixq.compile), measured
    on `example_input`. machine: a Machine (default: the cached machine model)."""
    from ...runtime.cnn.compile import compile as compile_plan

    compile_kw.setdefault("progress", False)
    plan = compile_plan(model, example_input, config, calibration, **compile_kw)
    x = example_input.detach().cpu().numpy() if hasattr(example_input, "detach") else example_input
    return profile_plan(plan, x, machine if machine is not None else get_machine(), measure, repeats)
