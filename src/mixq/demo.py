"""`mixq demo`, the main job on the embedded default: the shipped ResNet-20 and Fashion-MNIST ->
machine model -> profile -> AIQ search -> compiled plan -> measured run -> report.

Candidate configs are scored on a seeded validation subset of the test images; the final
figures use every test image available (the full Fashion-MNIST test set when installed, else
the shipped 2 000-image subset).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import kernels
from .data import fmnist
from .planner import DEFAULT_CANDIDATES, ModelProblem, config_costs, measure_latency, model_digest
from .roofline import machine as get_machine
from .runtime.compile import ModelCompiler


def _say(msg: str) -> None:
    print(f"[mixq demo] {msg}", flush=True)


def _accuracy(plan, x: np.ndarray, y: np.ndarray, batch: int = 500) -> float:
    hits = 0
    for i in range(0, len(x), batch):
        hits += int((plan.run(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return 100.0 * hits / len(x)


def _why(cost_before, cost_after, machine) -> str:
    """One line on what lowering did for a layer, from the cost model."""
    if cost_after.precision == cost_before.precision:
        if cost_before.bound == "compute":
            return "kept: compute-bound, and its accuracy cost outweighed the bytes saved"
        return "kept: lowering it cost more accuracy than its bytes were worth"
    if cost_before.flops < 2e6:
        return "lowered; too small for the speed to show (per-op overhead dominates)"
    if cost_after.bound == "compute":
        return "lowered: now compute-bound on the int8 roof"
    return "lowered: memory-bound, fewer bytes is faster"


def run_demo(out_dir="mixq-demo", *, val_size: int = 1000, lam: float = 0.5, max_drop: float = 1.0,
             candidates=DEFAULT_CANDIDATES, seed: int = 0, quick: bool = False, progress: bool = True) -> dict:
    import torch

    from .models import registry
    from .report import write_report
    from .search import Objective, greedy, pareto_front, random_configs

    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(kernels.get_num_threads())

    _say("loading the shipped ResNet-20 and Fashion-MNIST")
    model = registry.get("resnet20", pretrained=True)
    images, labels = fmnist.fashion_mnist("test", allow_subset=True)
    x_all = fmnist.preprocess(images)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x_all))
    n_val = min(300 if quick else val_size, len(x_all) // 2)
    val = order[:n_val]
    try:
        train, _ = fmnist.fashion_mnist("train")
        calib_src = fmnist.preprocess(train[rng.choice(len(train), 256, replace=False)])
    except FileNotFoundError:
        calib_src = x_all[order[n_val:n_val + 256]]
    calibration = [calib_src[i:i + 64] for i in range(0, len(calib_src), 64)]
    x_val, y_val = x_all[val], labels[val]
    x_lat = x_all[:1]

    _say(f"machine model ({kernels.get_num_threads()} threads; cached after the first run)")
    mach = get_machine()
    _say(f"  int8 {mach.peak_int8_gops:.0f} GOPS, fp32 {mach.peak_fp32_gflops:.0f} GFLOPS, "
         f"DRAM {mach.dram_read_gbs:.1f} GB/s")

    compiler = ModelCompiler(model, torch.from_numpy(x_all[:1]), calibration, progress=progress)
    layers = compiler.layer_names()
    cache_path = out / "evaluations.jsonl"
    from .search import EvalCache

    def problem(latency: str) -> ModelProblem:
        ns = model_digest(model, f"{list(candidates)}|val{n_val}|seed{seed}|{latency}")
        return ModelProblem(compiler, lambda plan: _accuracy(plan, x_val, y_val), tuple(candidates), mach, latency,
                            x_lat, EvalCache(cache_path, ns))

    aiq_problem = problem("predicted")
    ref = aiq_problem.reference()
    _say(f"reference (all {candidates[0]}): validation accuracy {ref.accuracy:.2f} %, model AI {ref.ai:.1f}")

    _say(f"AIQ search: greedy over {len(layers)} layers x {list(candidates)}, lambda {lam}, "
         f"accuracy floor {max_drop} pt")
    aiq = greedy(aiq_problem.problem, Objective(lam=lam, acc0=ref.accuracy, ai0=ref.ai, max_drop=max_drop),
                 progress=progress)
    _say("latency-aware search: greedy on measured plan latency")
    lat_problem = problem("measured")
    lat_ref = lat_problem.reference()
    lat = greedy(lat_problem.problem, Objective(lam=1.0, acc0=lat_ref.accuracy, ai0=lat_ref.ai, max_drop=max_drop,
                                               kind="latency", lat0=lat_ref.latency_s), progress=progress)
    n_lowered = sum(p != candidates[0] for p in aiq.best.values())
    randoms = random_configs(aiq_problem.problem, max(1, n_lowered), 3 if quick else 6, seed)
    random_evals = [(c, aiq_problem.problem.evaluate(c)) for c in randoms]

    _say("final figures: every test image, measured latency at batch 1")
    configs = {
        "FP32": {n: "fp32" for n in layers},
        "uniform INT8 (w8a8)": {n: "w8a8" for n in layers},
        "uniform INT4 (w4a8-g128)": {n: "w4a8-g128" for n in layers},
        "AIQ": aiq.best,
        "latency-aware": lat.best,
    }
    summary, plans = [], {}
    for name, cfg in configs.items():
        plan = compiler.plan({"default": "fp32", "layers": cfg})
        plans[name] = plan
        _, totals = config_costs(compiler, cfg, mach)
        summary.append(dict(config=name, accuracy=_accuracy(plan, x_all, labels), ai=totals["ai"],
                            latency_ms=measure_latency(plan, x_lat, 21) * 1e3, weight_mb=plan.weight_bytes / 1e6))
    base = summary[0]["latency_ms"]
    for row in summary:
        row["speedup"] = base / row["latency_ms"]
    plans["AIQ"].save(out / "resnet20-aiq.mixq")

    before, _ = config_costs(compiler, configs["FP32"], mach)
    after, _ = config_costs(compiler, aiq.best, mach)
    prof_before = plans["FP32"].profile(x_lat, repeats=5)
    prof_after = plans["AIQ"].profile(x_lat, repeats=5)
    t_before = {p["name"]: p["seconds"] for p in prof_before}
    t_after = {p["name"]: p["seconds"] for p in prof_after}
    layer_rows = []
    for cb in before:
        ca = next((c for c in after if c.name == cb.name), None)
        if ca is None or cb.kind not in ("conv", "linear", "depthwise"):
            continue
        side = lambda c, t: dict(precision=c.precision, weight_bytes=c.weight_bytes, act_bytes=c.act_bytes,  # noqa: E731
                                 ai=c.ai, measured_s=t.get(c.name), predicted_s=c.predicted_s)
        layer_rows.append(dict(name=cb.name, kind=cb.kind, flops=cb.flops, before=side(cb, t_before),
                               after=side(ca, t_after), bound_after=ca.bound, why=_why(cb, ca, mach)))

    def points(results, label):
        return [dict(accuracy=e.accuracy, ai=e.ai, latency_s=e.latency_s, label=label) for e in results]

    aiq_hist = [h.evaluation for h in aiq.history]
    fronts = {
        "AIQ search (validation)": _mark_front(points(aiq_hist, "AIQ"), pareto_front),
        "random, same #lowered": _mark_front(points([e for _, e in random_evals], "random"), pareto_front),
        "uniform": _mark_front([dict(accuracy=r["accuracy"], ai=r["ai"], latency_s=r["latency_ms"] / 1e3,
                                     label=r["config"]) for r in summary[:3]], pareto_front),
    }
    notes = [f"Validation subset: {n_val} seeded test images; final accuracy on {len(x_all)} test images.",
             f"Search cache: {cache_path} ({len(aiq.history)} AIQ evaluations).",
             f"Total time {time.perf_counter() - t_start:.0f} s."]
    report = write_report(out, title="mixq demo: ResNet-20 on Fashion-MNIST", machine=mach.to_dict(),
                          layers=layer_rows, fronts=fronts, summary=summary, notes=notes)
    _print_summary(summary)
    _say(f"report: {report}")
    _say(f"AIQ plan: {out / 'resnet20-aiq.mixq'} (load with mixq.load_plan; runs without torch)")
    return dict(summary=summary, report=str(report), aiq=aiq.best, latency=lat.best)


def _mark_front(points: list[dict], pareto_front) -> list[dict]:
    front = pareto_front(points, maximize=("accuracy", "ai"))
    ids = {id(p) for p in front}
    for p in points:
        p["on_front"] = id(p) in ids
    return points


def _print_summary(rows: list[dict]) -> None:
    head = f"{'config':<26}{'accuracy %':>11}{'model AI':>10}{'latency ms':>12}{'speedup':>9}{'weights MB':>12}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['config']:<26}{r['accuracy']:>11.2f}{r['ai']:>10.1f}{r['latency_ms']:>12.3f}"
              f"{r['speedup']:>8.2f}x{r['weight_mb']:>12.3f}")
