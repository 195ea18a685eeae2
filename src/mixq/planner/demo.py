"""`mixq demo`, the main job on the embedded default: the shipped ResNet-20 and Fashion-MNIST ->
machine model -> profile -> AIQ and latency-aware search -> compiled plans -> measured run ->
report (markdown + plots) and a table of FP32 / uniform INT8 / uniform INT4 / AIQ / latency-aware.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .. import ops
from ..quant.precisions import default_int8
from .model_search import DEFAULT_CANDIDATES
from .roofline import machine as get_machine
from .roofline import profile_plan
from ..runtime.cnn.compile import ModelCompiler
from .study import fashion_mnist_data, final_rows, fronts, layer_rows, print_summary, run_study, say


def _profile_step(compiler: ModelCompiler, data, mach) -> None:
    """The roofline profile of the model at fp32 and this CPU's int8: totals, and the layers that dominate."""
    for config in ("fp32", default_int8()):
        prof = profile_plan(compiler.plan(config), data.x_test[:1], mach, repeats=5)
        t = prof.totals
        say(f"profile {config}: {t['flops'] / 1e6:.1f} MFLOP, weights {t['weight_bytes'] / 1e3:.0f} KB, "
            f"activations {t['act_bytes'] / 1e3:.0f} KB, model AI {t['ai_weights']:.1f} (weights only) / "
            f"{t['ai']:.1f} (with activations), roofline {t['predicted_s'] * 1e6:.0f} us, measured "
            f"{t['measured_s'] * 1e6:.0f} us at batch 1")
        bound = sum(c.bound == "compute" for c in prof.layers())
        say(f"  {bound} of {len(prof.layers())} layers compute-bound under the machine model")


def run_demo(out_dir="mixq-demo", *, val_size: int = 500, lam: float = 0.5, max_drop: float = 1.0,
             candidates=DEFAULT_CANDIDATES, seed: int = 0, algorithm: str = "coordinate", quick: bool = False,
             progress: bool = True) -> dict:
    import torch

    from ..models import registry
    from .report import write_report

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / ".gitignore").exists():  # generated output: keep it out of the user's repository
        (out / ".gitignore").write_text("# written by mixq demo\n*\n")

    say("loading the shipped ResNet-20 and Fashion-MNIST")
    model = registry.get("resnet20", pretrained=True)
    data = fashion_mnist_data(min(val_size, 300) if quick else val_size, seed)
    say(f"machine model ({ops.get_num_threads()} threads; cached after the first run)")
    mach = get_machine()
    say(f"  int8 {mach.peak_int8_gops:.0f} GOPS, fp32 {mach.peak_fp32_gflops:.0f} GFLOPS, "
        f"DRAM {mach.dram_read_gbs:.1f} GB/s")
    # Captured and calibrated once: the profile, the searches and the final plans share it.
    compiler = ModelCompiler(model, torch.from_numpy(data.x_val[:1]), data.calibration, progress=progress)
    _profile_step(compiler, data, mach)
    study = run_study(model, data, mach, out / "evaluations.jsonl", candidates=candidates, lam=lam,
                      max_drop=max_drop, sweeps=1 if quick else 2, n_random=3 if quick else 6, seed=seed,
                      algorithm=algorithm, compiler=compiler, progress=progress)
    say(f"final figures: {len(data.x_test)} test images, measured latency at batch 1")
    summary, plans = final_rows(study, data, mach)
    plans["AIQ"].save(out / "resnet20-aiq.mixq")
    results = dict(
        title="mixq demo: ResNet-20 on Fashion-MNIST", machine=mach.to_dict(),
        layers=layer_rows(study, plans, data, mach), fronts=fronts(study, summary), summary=summary,
        notes=[f"Candidates scored on {len(data.x_val)} seeded test images (validation subset); final accuracy "
               f"on {len(data.x_test)} test images.",
               f"AIQ: lambda {lam}, accuracy floor {max_drop} pt below fp32 on the validation subset; "
               f"{len(study.aiq.history)} configs evaluated, cached in {out / 'evaluations.jsonl'}.",
               f"Total time {time.perf_counter() - t0:.0f} s."])
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))  # `mixq report` rebuilds it
    report = write_report(out, **results)
    print_summary(summary)
    say(f"report: {report}")
    say(f"AIQ plan: {out / 'resnet20-aiq.mixq'} (mixq.load_plan runs it without torch)")
    return dict(summary=summary, report=str(report), aiq=study.aiq.best, latency=study.latency.best)
