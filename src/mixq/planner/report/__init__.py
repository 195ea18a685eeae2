"""The planner's report: one markdown file and PNG plots in a folder.

```python
from mixq.planner.report import write_report
path = write_report("out/", title="ResNet-20, AIQ vs latency-aware", machine=m.to_dict(),
                    layers=layers, fronts={"aiq": [...], "latency": [...]}, summary=rows,
                    notes=["accuracy on 1000 test images"])   # -> out/report.md
```

Inputs are plain data (dicts of numbers and strings); a missing key, None or NaN prints as "-"
and is left out of the plots, never an error.

- ``machine``: `mixq.planner.roofline.Machine.to_dict()` (cpu, isa, threads, peak_int8_gops,
  peak_bf16_gflops, peak_fp32_gflops, gemm_int8_gops, gemm_fp32_gflops, dram_read_gbs,
  l3_read_gbs, l2_read_gbs, measured_at).
- ``layers``: in execution order, one dict per layer: name, kind, flops, before / after =
  {precision, weight_bytes, act_bytes, ai, measured_s (or None), predicted_s}, bound_after
  ("compute" | "memory") and why (a short reason; when missing or empty, a reason is derived by
  the rules of `mixq.planner.report.why` and marked (*)). `layers_from_costs(before_ops, after_ops, why)`
  builds these rows from two `mixq.planner.roofline` cost lists (e.g. `Profile.ops`).
- ``fronts``: name -> points {accuracy, ai, latency_s (or None), label, on_front}.
- ``summary``: rows {config, accuracy, ai, latency_ms, weight_mb, speedup (optional; else the
  first row's latency / the row's latency)}.

Files written in ``out_dir`` (created if needed): ``report.md``, ``roofline.png``,
``pareto_ai.png``, ``pareto_latency.png`` (only when some front point has a latency),
``precision.png``. A plot that cannot be drawn (no data) is not written, a stale copy of it
from an earlier report in the same folder is removed, and the markdown says why.

matplotlib (``pip install "mixq[report]"``) is imported only when a report is written.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .layers import layers_from_costs
from .plots import INSTALL_HINT, MissingMatplotlibError, require_matplotlib
from .why import default_why

__all__ = ["write_report", "layers_from_costs", "default_why", "MissingMatplotlibError", "INSTALL_HINT", "PLOTS"]

PLOTS = ("roofline.png", "pareto_ai.png", "pareto_latency.png", "precision.png")


def _dicts(value, what: str) -> list[dict]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{what} must be a list of dicts, got {type(value).__name__}")
    out = list(value)
    for i, v in enumerate(out):
        if not isinstance(v, Mapping):
            raise TypeError(f"{what}[{i}] must be a dict, got {type(v).__name__}")
    return [dict(v) for v in out]


def write_report(out_dir, *, title: str, machine: dict, layers: list[dict], fronts: dict[str, list[dict]],
                 summary: list[dict], notes=()) -> Path:
    """Writes out_dir/report.md and its PNG plots; returns the path of report.md.

    Raises MissingMatplotlibError (an ImportError) naming ``pip install "mixq[report]"`` when
    matplotlib is not installed (before anything is written), TypeError on inputs of the wrong
    shape (not a dict / not a list of dicts)."""
    from . import markdown as md
    from .plots import plot_pareto, plot_precision, plot_roofline

    require_matplotlib()
    if hasattr(machine, "to_dict") and not isinstance(machine, Mapping):
        machine = machine.to_dict()  # a mixq.planner.roofline.Machine is accepted as is
    if machine is not None and not isinstance(machine, Mapping):
        raise TypeError(f"machine must be a dict (Machine.to_dict()), got {type(machine).__name__}")
    if fronts is not None and not isinstance(fronts, Mapping):
        raise TypeError(f"fronts must be a dict name -> list of points, got {type(fronts).__name__}")
    machine = dict(machine or {})
    layers = _dicts(layers, "layers")
    summary = _dicts(summary, "summary")
    fronts = {str(k): _dicts(v, f"fronts[{k!r}]") for k, v in (fronts or {}).items()}
    if isinstance(notes, str):
        notes = [notes]

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "roofline.png": plot_roofline(out / "roofline.png", machine, layers),
        "pareto_ai.png": plot_pareto(out / "pareto_ai.png", fronts, summary, "ai"),
        "pareto_latency.png": plot_pareto(out / "pareto_latency.png", fronts, summary, "latency"),
        "precision.png": plot_precision(out / "precision.png", layers),
    }
    for name, (drawn, _) in results.items():
        if not drawn:
            (out / name).unlink(missing_ok=True)  # a stale plot of an earlier report would contradict the text

    lines = [f"# {' '.join(str(title or '').split()) or 'mixq report'}", ""]
    lines += md.machine_section(machine)
    lines += md.summary_section(summary)
    lines += ["## Plots", ""]
    captions = {"roofline.png": "Roofline: layers before and after",
                "pareto_ai.png": "Accuracy vs model arithmetic intensity",
                "pareto_latency.png": "Accuracy vs latency",
                "precision.png": "Weight precision per layer"}
    for name, (drawn, note) in results.items():
        lines += [f"### {captions[name]}", ""]
        if drawn:
            lines += [f"![{captions[name]}]({name})", ""]
        lines += [f"_{note}_" if not drawn else note, ""]
    lines += md.layers_section(layers, machine)
    notes = [str(n).strip() for n in (notes or ()) if n is not None and str(n).strip()]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}".replace("\n", "\n  ") for n in notes] + [""]
    path = out / "report.md"
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path
