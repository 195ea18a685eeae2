"""A precision study of one model: the searches and baselines `mixq demo` and bench/aiq.py run.

Candidates are scored on a seeded validation subset of the test images; final figures use
every test image available. With a held-out check subset (disjoint from validation), the AIQ pick
is confirmed there: a search that scores hundreds of configs on the same images picks one that is
lucky on them, so the run steps back along its accepted moves to the last config that also holds
the floor on the check images (and the latency-aware pick to the last one no less accurate there
than the AIQ pick). Searches: AIQ (greedy from the reference then coordinate sweeps, or
coordinate descent alone: about L*C evaluations per sweep instead of greedy's L^2*C) and
latency-aware (coordinate descent on measured kernel times -- each layer profiled at each
precision -- from the fastest feasible of the uniform configs and the AIQ config). Baselines:
uniform configs and random configs with as many lowered layers as the AIQ config.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..data import fmnist
from ..quant.precisions import default_int8, resolve_candidates
from .model_search import DEFAULT_CANDIDATES, ModelProblem, measure_latency, model_digest, spec_costs
from .roofline import Machine
from ..runtime.cnn.compile import ModelCompiler


def say(msg: str) -> None:
    print(f"[mixq] {msg}", flush=True)


@dataclass
class StudyData:
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    calibration: list
    x_latency: np.ndarray  # one image: latency at batch 1
    x_check: np.ndarray | None = None  # held-out images (disjoint from validation) confirming the picks
    y_check: np.ndarray | None = None


def fashion_mnist_data(val_size: int, seed: int = 0, check_size: int = 0) -> StudyData:
    """Validation (and, with check_size, held-out check) subsets drawn from the test images."""
    images, labels = fmnist.fashion_mnist("test", allow_subset=True)
    x_all = fmnist.preprocess(images)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x_all))
    n_val = min(val_size, len(x_all) // 2)
    n_check = min(check_size, len(x_all) - n_val)
    try:
        train, _ = fmnist.fashion_mnist("train")
        calib = fmnist.preprocess(train[rng.choice(len(train), 256, replace=False)])
    except FileNotFoundError:  # only the shipped test subset: calibrate on test images outside validation
        rest = order[n_val + n_check:]  # (and outside the check subset while enough are left)
        calib = x_all[(rest if len(rest) >= 64 else order[n_val:])[:256]]
    check = order[n_val:n_val + n_check]
    return StudyData(x_all[order[:n_val]], labels[order[:n_val]], x_all, labels,
                     [calib[i:i + 64] for i in range(0, len(calib), 64)], x_all[:1],
                     x_all[check] if n_check else None, labels[check] if n_check else None)


def last_confirmed(trajectory: list, drop_on_check, max_drop: float):
    """The last accepted step whose accuracy drop on the held-out check images is within max_drop
    (trajectory: the search's accepted steps, start first; drop_on_check(config) -> points).
    Returns (entry, steps back); the first step (the start) when none holds."""
    for back, entry in enumerate(reversed(trajectory)):
        if drop_on_check(entry.config) <= max_drop:
            return entry, back
    return trajectory[0], len(trajectory) - 1


def accuracy(plan, x: np.ndarray, y: np.ndarray, batch: int = 500) -> float:
    hits = 0
    for i in range(0, len(x), batch):
        hits += int((plan.run(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return 100.0 * hits / len(x)


@dataclass
class Study:
    compiler: ModelCompiler
    reference: object                 # Evaluation of the all-reference config
    aiq: object                       # SearchResult
    latency: object                   # SearchResult
    random_evals: list                # [(config, Evaluation)]
    configs: dict = field(default_factory=dict)  # name -> {layer: precision}


def run_study(model, data: StudyData, machine: Machine, cache_path, *, candidates=DEFAULT_CANDIDATES,
              lam: float = 0.5, max_drop: float = 1.0, sweeps: int = 2, n_random: int = 6, seed: int = 0,
              algorithm: str = "greedy", compiler: ModelCompiler | None = None, progress: bool = True) -> Study:
    import torch

    from .search import EvalCache, Objective, coordinate_descent, greedy, random_configs, uniform

    candidates = resolve_candidates(candidates)
    if compiler is None:
        compiler = ModelCompiler(model, torch.from_numpy(data.x_val[:1]), data.calibration, progress=progress)
    layers = compiler.layer_names()

    def problem(latency: str) -> ModelProblem:
        ns = model_digest(model, f"{list(candidates)}|val{len(data.x_val)}|seed{seed}|{latency}")
        return ModelProblem(compiler, lambda plan: accuracy(plan, data.x_val, data.y_val), tuple(candidates),
                            machine, latency, data.x_latency, EvalCache(cache_path, ns))

    aiq_problem = problem("predicted")
    ref = aiq_problem.reference()
    say(f"reference (all {candidates[0]}): validation accuracy {ref.accuracy:.2f} %, model AI {ref.ai:.1f}")
    say(f"AIQ search ({algorithm}) over {len(layers)} layers x {list(candidates)}, lambda {lam}, "
        f"floor -{max_drop} pt")
    aiq_obj = Objective(lam=lam, acc0=ref.accuracy, ai0=ref.ai, max_drop=max_drop)
    # Layers that read the same tensor only pay off lowered together (one float reader keeps the
    # tensor float), which single-layer moves cannot see; so the search also starts from the best
    # uniform config when that beats the reference.
    start = min([aiq_problem.problem.reference_config()] + [uniform(aiq_problem.problem, p) for p in candidates[1:]],
                key=lambda c: aiq_obj.key(aiq_problem.problem.evaluate(c)))
    if algorithm == "greedy":
        first = greedy(aiq_problem.problem, aiq_obj, progress=progress)
        # Greedy moves one layer at a time; coordinate sweeps from its result (or the best uniform
        # config) can still move layers back up or further down.
        better = min([first.best, start], key=lambda c: aiq_obj.key(aiq_problem.problem.evaluate(c)))
        aiq = coordinate_descent(aiq_problem.problem, aiq_obj, start=better, max_sweeps=sweeps, progress=progress)
        aiq.history = first.history + aiq.history
        steps = first.trajectory + aiq.trajectory
    elif algorithm == "coordinate":
        aiq = coordinate_descent(aiq_problem.problem, aiq_obj, start=start, max_sweeps=sweeps, progress=progress)
        steps = aiq.trajectory
    else:
        raise ValueError(f"algorithm must be 'greedy' or 'coordinate', got {algorithm!r}")
    checked = {}  # config -> accuracy on the check images: both confirmations can meet a config

    def check_acc(cfg):
        key = tuple(sorted(cfg.items()))
        if key not in checked:
            plan = compiler.plan({"default": candidates[0], "layers": cfg})
            checked[key] = accuracy(plan, data.x_check, data.y_check)
        return checked[key]

    if data.x_check is not None and steps:
        ref_check = check_acc(aiq_problem.problem.reference_config())
        entry, back = last_confirmed(steps, lambda cfg: ref_check - check_acc(cfg), max_drop)
        say(f"AIQ pick confirmed on {len(data.x_check)} held-out images: "
            + (f"stepped back {back} accepted moves" if back else "holds the floor there"))
        aiq = replace(aiq, best=entry.config, best_eval=entry.evaluation, best_loss=entry.loss)

    # The latency-aware search answers "how fast at the AIQ config's accuracy?": its floor is the
    # AIQ config's validation accuracy (never below the user's floor), so the two are compared at
    # equal accuracy and the AIQ config itself is always a feasible start.
    aiq_drop = ref.accuracy - aiq_problem.problem.evaluate(aiq.best).accuracy
    lat_drop = min(max_drop, max(0.0, aiq_drop))
    floor = f"{lat_drop:.2f} pt below fp32" if lat_drop >= 0.005 else "fp32's accuracy"
    say(f"latency-aware search: coordinate descent on measured kernel times, floor {floor} "
        "(the AIQ config's accuracy)")
    # Lowering one layer of an fp32 model adds quantize/dequantize passes, so every greedy step
    # from fp32 looks slower: start from the fastest feasible of the uniform configs and the AIQ
    # config instead, and move layers up or down from there.
    lat_problem = problem("kernels")
    lat_ref = lat_problem.reference()
    lat_obj = Objective(lam=1.0, acc0=lat_ref.accuracy, ai0=lat_ref.ai, max_drop=lat_drop, kind="latency",
                        lat0=lat_ref.latency_s)
    scored = [(c, lat_problem.problem.evaluate(c))
              for c in [uniform(lat_problem.problem, p) for p in candidates[1:]] + [aiq.best]]
    feasible = [(c, e) for c, e in scored if lat_obj.feasible(e)] or [(lat_problem.problem.reference_config(), lat_ref)]
    start = min(feasible, key=lambda ce: lat_obj(ce[1]))[0]
    lat = coordinate_descent(lat_problem.problem, lat_obj, start=start, max_sweeps=sweeps, progress=progress)
    if data.x_check is not None and lat.trajectory:
        # Its moves are scored on the same validation images, so its pick is confirmed like the AIQ
        # pick: the last accepted step no less accurate than the AIQ config on the held-out images.
        aiq_check = check_acc(aiq.best)
        entry, back = last_confirmed(lat.trajectory, lambda cfg: aiq_check - check_acc(cfg), 0.0)
        say(f"latency-aware pick confirmed on {len(data.x_check)} held-out images: "
            + (f"stepped back {back} accepted moves" if back else "as accurate as the AIQ pick there"))
        lat = replace(lat, best=entry.config, best_eval=entry.evaluation, best_loss=entry.loss)

    n_lowered = sum(p != candidates[0] for p in aiq.best.values())
    randoms = random_configs(aiq_problem.problem, max(1, n_lowered), n_random, seed)
    random_evals = [(c, aiq_problem.problem.evaluate(c)) for c in randoms]
    configs = {
        "FP32": {n: candidates[0] for n in layers},
        f"uniform INT8 ({default_int8()})": {n: default_int8() for n in layers},
        "uniform INT4 (w4a8-g128)": {n: "w4a8-g128" for n in layers},
        "AIQ": aiq.best,
        "latency-aware": lat.best,
    }
    return Study(compiler, ref, aiq, lat, random_evals, configs)


def final_rows(study: Study, data: StudyData, machine: Machine, latency_batches=(1,), rounds: int = 3
               ) -> tuple[list[dict], dict]:
    """Accuracy on every test image, model AI, measured latency and weights of each named config;
    and the compiled plans by name. Latency: the least of `rounds` medians, the configs timed in
    turn within each round, so a noisy moment of a shared machine hits one sample of each, not one
    config (measured: batch-1 timings of a 0.3 ms model moved 2x between back-to-back runs)."""
    rows, plans = [], {}
    for name, cfg in study.configs.items():
        plan = study.compiler.plan({"default": "fp32", "layers": cfg})
        plans[name] = plan
        _, totals = spec_costs(plan.spec, machine)
        rows.append(dict(config=name, accuracy=accuracy(plan, data.x_test, data.y_test), ai=totals["ai"],
                         weight_mb=plan.weight_bytes / 1e6))
    for b in latency_batches:
        x = np.resize(data.x_test, (b, *data.x_test.shape[1:]))
        samples = {r["config"]: [] for r in rows}
        for _ in range(rounds):
            for r in rows:
                samples[r["config"]].append(measure_latency(plans[r["config"]], x, 11 if b == 1 else 3))
        for r in rows:
            r[f"latency_ms_b{b}"] = min(samples[r["config"]]) * 1e3
    for r in rows:
        r["latency_ms"] = r[f"latency_ms_b{latency_batches[0]}"]
        r["speedup"] = rows[0]["latency_ms"] / r["latency_ms"]
    return rows, plans


def layer_rows(study: Study, plans: dict, data: StudyData, machine: Machine, before="FP32", after="AIQ") -> list[dict]:
    """Per-layer rows of the report: cost model and measured time before and after."""
    cb_all, _ = spec_costs(plans[before].spec, machine)
    ca_all, _ = spec_costs(plans[after].spec, machine)
    t_b = {p["name"]: p["seconds"] for p in plans[before].profile(data.x_latency, repeats=5)}
    t_a = {p["name"]: p["seconds"] for p in plans[after].profile(data.x_latency, repeats=5)}
    after_by_name = {c.name: c for c in ca_all}

    def side(c, t):
        return dict(precision=c.precision, weight_bytes=c.weight_bytes, act_bytes=c.act_bytes, ai=c.ai,
                    measured_s=t.get(c.name), predicted_s=c.predicted_s)

    rows = []
    for cb in cb_all:
        ca = after_by_name.get(cb.name)
        if ca is None or cb.kind not in ("conv", "linear", "depthwise"):
            continue
        rows.append(dict(name=cb.name, kind=cb.kind, flops=cb.flops, before=side(cb, t_b), after=side(ca, t_a),
                         bound_after=ca.bound))  # "why" from mixq.planner.report's rules
    return rows


def fronts(study: Study, summary: list[dict]) -> dict:
    from .search import pareto_front

    def mark(points):
        on = {id(p) for p in pareto_front(points, maximize=("accuracy", "ai"))}
        for p in points:
            p["on_front"] = id(p) in on
        return points

    def pts(evals, label):
        return [dict(accuracy=e.accuracy, ai=e.ai, latency_s=e.latency_s, label=label) for e in evals]

    return {
        "AIQ search (validation)": mark(pts([h.evaluation for h in study.aiq.history], "AIQ")),
        "latency-aware search (validation)": mark(pts([h.evaluation for h in study.latency.history], "latency")),
        "random, same #lowered (validation)": mark(pts([e for _, e in study.random_evals], "random")),
        "final configs (test)": mark([dict(accuracy=r["accuracy"], ai=r["ai"], latency_s=r["latency_ms"] / 1e3,
                                           label=r["config"]) for r in summary]),
    }


def print_summary(rows: list[dict]) -> None:
    head = f"{'config':<26}{'accuracy %':>11}{'model AI':>10}{'latency ms':>12}{'speedup':>9}{'weights MB':>12}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['config']:<26}{r['accuracy']:>11.2f}{r['ai']:>10.1f}{r['latency_ms']:>12.3f}"
              f"{r['speedup']:>8.2f}x{r['weight_mb']:>12.3f}")


__all__ = ["StudyData", "Study", "fashion_mnist_data", "run_study", "final_rows", "layer_rows", "fronts",
           "print_summary", "accuracy", "say"]
