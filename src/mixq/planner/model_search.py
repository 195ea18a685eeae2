"""The planner: a per-layer precision search on a real model, compiled and measured by mixq.

`search()` ties the pieces together: the runtime compiles the model at a candidate config
(`ModelCompiler`: capture and calibration once, packed weights cached per layer), the user's
`evaluate(plan)` gives its accuracy, the cost model gives its arithmetic intensity and
roofline-predicted latency (or the plan's measured latency), and `mixq.planner.search` algorithms pick
the configs. Evaluations are cached on disk, keyed by a digest of the model, the candidates,
the calibration and the evaluation subset: a killed search resumes with nothing lost.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from ..quant import parse_precision
from ..quant.precisions import resolve_candidates
from ..runtime.cnn.compile import ModelCompiler
from .roofline import Machine, model_totals, plan_costs
from .search import EvalCache, Evaluation, Objective, Problem, cached, coordinate_descent, greedy
from .search.executor import resolve_executor

DEFAULT_CANDIDATES = ("fp32", "int8", "w4a8-g128")  # int8: this CPU's default int8 (default_int8)


def model_digest(model, extra: str = "") -> str:
    """A digest of the model's parameters and buffers (plus `extra`): the cache namespace.
    model: a torch module or a captured Graph (what a model file compiles from)."""
    h = hashlib.sha256(extra.encode())
    if not hasattr(model, "state_dict"):
        for node in model.nodes:
            h.update(f"{node.name}:{node.op}:{node.attrs}:{node.clamp}".encode())
            for a in (node.weight, node.bias):
                if a is not None:
                    h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def spec_costs(spec: dict, machine: Machine | None, batch: int = 1):
    """Cost-model figures of a plan spec (Plan.spec): per-op costs and model totals."""
    costs = plan_costs(spec, batch, machine)
    return costs, model_totals(costs)



def measure_latency(plan, x: np.ndarray, repeats: int = 7) -> float:
    """Median wall time of plan.run(x) after one warm-up run."""
    plan.run(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        plan.run(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


@dataclass
class ConfigEvaluator:
    """config -> Evaluation for one model: compile the plan at the config, score it with
    `evaluate_plan`, cost it. What the search runs locally, and what it ships to every Ray worker
    (a copy whose compiler is `detached()`: no torch, ranges calibrated once here), so both run
    the same code on the same data."""
    compiler: ModelCompiler
    evaluate_plan: Callable                # plan -> accuracy (percent)
    candidates: tuple[str, ...]
    machine: Machine | None
    # "predicted": roofline; "measured": the plan run at each evaluation (noisy for small models:
    # neighbouring configs differ by microseconds); "kernels": each layer's measured time at each
    # candidate precision (profiled once, uniform plans) summed, plus roofline time of the other
    # ops (quantize/dequantize at precision boundaries, at least 2 us each): deterministic.
    latency: str = "predicted"
    latency_input: np.ndarray | None = None
    kernel_table: dict | None = None       # {precision: {op: seconds}}, profiled on first need

    def __post_init__(self):
        if self.latency not in ("predicted", "measured", "kernels"):
            raise ValueError("latency must be 'predicted', 'measured' or 'kernels'")
        if self.latency != "predicted" and self.latency_input is None:
            raise ValueError("measured latency needs latency_input (an NCHW batch)")

    def kernel_times(self) -> dict[str, dict[str, float]]:
        """{precision: {op name: seconds}} from profiling the uniform plan of each candidate."""
        if self.kernel_table is None:
            self.kernel_table = {}
            for p in self.candidates:
                plan = self.compiler.plan(p)
                # The least of three medians: a noisy moment of the machine must not make a
                # precision look slow for the whole search.
                runs = [plan.profile(self.latency_input, repeats=9) for _ in range(3)]
                self.kernel_table[p] = {q["name"]: min(r[i]["seconds"] for r in runs) for i, q in enumerate(runs[0])}
        return self.kernel_table

    def __call__(self, config: dict) -> Evaluation:
        plan = self.compiler.plan({"default": "fp32", "layers": config})
        costs, totals = spec_costs(plan.spec, self.machine)
        if self.latency == "predicted":
            lat = totals["predicted_s"]
        elif self.latency == "measured":
            lat = measure_latency(plan, self.latency_input)
        else:
            table = self.kernel_times()
            lat = sum(table[config[c.name]].get(c.name, c.predicted_s) if c.name in config
                      else max(c.predicted_s, 2e-6) for c in costs)
        return Evaluation(accuracy=float(self.evaluate_plan(plan)), ai=float(totals["ai"]), latency_s=float(lat))

    def shippable(self) -> "ConfigEvaluator":
        """A copy for other processes: the compiler detached (calibrated here, when a candidate
        quantizes activations) and the kernel timings taken here, once, so every worker uses the
        same table whatever machine it runs on."""
        calibrated = any(parse_precision(c).int8_activations for c in self.candidates)
        table = self.kernel_times() if self.latency == "kernels" else None
        return replace(self, compiler=self.compiler.detached(calibrated), kernel_table=table)


@dataclass
class ModelProblem:
    """A real model as a search Problem; `problem` is what the algorithms take."""
    compiler: ModelCompiler
    evaluate_plan: object                  # plan -> accuracy (percent)
    candidates: tuple[str, ...]
    machine: Machine | None
    latency: str = "predicted"             # see ConfigEvaluator
    latency_input: np.ndarray | None = None
    cache: EvalCache | None = None
    problem: Problem = field(init=False)
    evaluator: ConfigEvaluator = field(init=False)

    def __post_init__(self):
        self.evaluator = ConfigEvaluator(self.compiler, self.evaluate_plan, self.candidates, self.machine,
                                         self.latency, self.latency_input)
        evaluate = self.evaluator if self.cache is None else cached(self.evaluator, self.cache)
        self.problem = Problem(layers=self.compiler.layer_names(), candidates=list(self.candidates),
                               evaluate=evaluate)

    def kernel_times(self) -> dict[str, dict[str, float]]:
        return self.evaluator.kernel_times()

    def reference(self) -> Evaluation:
        return self.problem.evaluate({name: self.candidates[0] for name in self.problem.layers})


def search(model, example_input, calibration, evaluate, *, candidates=DEFAULT_CANDIDATES, algorithm="greedy",
           objective="aiq", lam: float = 0.5, max_drop: float | None = 1.0, latency="predicted",
           latency_input=None, machine: Machine | None = None, cache_path=None, subset_id: str = "",
           executor="local", progress: bool = True, **compile_kw):
    """Search per-layer precisions of `model` (a torch module, or a model file / ONNX model as
    mixq.compile takes; example_input may then be None for the file's input shape).

    evaluate(plan) -> accuracy in percent on the user's validation subset (name it with
    `subset_id` so cached evaluations are never mixed across subsets). objective: "aiq" (maximize
    model AI, penalize accuracy loss: L = -lam*AI/AI0 + (1-lam)*max(0, acc0-acc)/1pt) or "latency"
    (minimize latency under the same penalty). max_drop: hard accuracy floor (points below the
    reference, all-`candidates[0]`). executor: where evaluations run: "local" (this process, one
    after another), "ray" (in parallel on a Ray cluster, `pip install "mixq[ray]"`) or an executor
    object such as `mixq.ray.RayExecutor(address=..., workers=...)`; `evaluate` then travels to the
    workers (it must be picklable: a lambda or closure over numpy data is). The answer and the
    cache are the same whichever runs it. Returns the algorithm's SearchResult; its `best` is a
    {layer: precision} map, usable as `mixq.compile(..., config={"default": "fp32", "layers": best})`.
    """
    algorithm_fn = _algorithm(algorithm)
    candidates = resolve_candidates(candidates)
    runner = resolve_executor(executor)  # a bad name or a missing ray fails before the capture
    compiler = ModelCompiler(model, example_input, calibration, progress=progress, **compile_kw)
    calib_digest = hashlib.sha256(b"".join(np.asarray(b[0] if isinstance(b, (tuple, list)) else b,
                                                     dtype=np.float32).tobytes() for b in calibration or []))
    mp = ModelProblem(compiler, evaluate, tuple(candidates), machine, latency, latency_input)
    key = [list(candidates), subset_id, latency, calib_digest.hexdigest()[:16], compile_kw.get("observer", "minmax")]
    local = mp.evaluator
    evaluate_config = runner.evaluator(local.shippable() if runner.remote else local, progress=progress)
    try:
        return solve(replace(mp.problem, evaluate=evaluate_config), model if compiler.gm is not None else compiler.graph,
                     key, algorithm_fn, objective=objective, lam=lam, max_drop=max_drop, cache_path=cache_path,
                     progress=progress)
    finally:
        close = getattr(evaluate_config, "close", None)
        if close is not None:
            close()


ALGORITHMS = {"greedy": greedy, "coordinate": coordinate_descent}


def _algorithm(name: str):
    if name not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {sorted(ALGORITHMS)}, got {name!r}")
    return ALGORITHMS[name]


def solve(problem: Problem, model, cache_key: list, algorithm, *, objective: str, lam: float,
          max_drop: float | None, cache_path=None, progress: bool = True):
    """What every search shares once its Problem is built: evaluations cached on disk under a
    digest of the model and `cache_key` (what else decides an evaluation), the reference (every
    layer at the first candidate), the objective, and the algorithm's run."""
    if cache_path is not None:
        ns = model_digest(model, json.dumps(cache_key))
        problem = replace(problem, evaluate=cached(problem.evaluate, EvalCache(cache_path, ns)))
    ref = problem.evaluate(problem.reference_config())
    obj = Objective(lam=lam, acc0=ref.accuracy, ai0=ref.ai, max_drop=max_drop, kind=objective, lat0=ref.latency_s)
    return algorithm(problem, obj, progress=progress)
