"""Per-layer precision search ("AIQ": arithmetic-intensity-aware quantization).

Pure Python over an abstract :class:`Problem` (layer names, candidate precisions from highest
to lowest, an ``evaluate(config) -> Evaluation`` callable), so it runs without a model; the
planner (:mod:`mixq.planner`) supplies a real one.

- objective: :class:`Evaluation`, :class:`Problem`, :class:`Objective`
  (L = -λ·AI/AI₀ + (1-λ)·max(0, acc₀-acc)/Δ₀, or latency/lat₀ in place of -AI/AI₀; hard
  accuracy floor ``max_drop``);
- algorithms: :func:`greedy`, :func:`coordinate_descent`, :func:`exhaustive`,
  :func:`lambda_sweep` -> :class:`SearchResult`;
- pareto: :func:`pareto_front`;
- baselines: :func:`uniform`, :func:`random_configs`, :func:`best_of`, :func:`sensitivity_order`;
- sensitivity: :func:`hutchinson_trace` (torch), :func:`weight_sqnr`, :func:`perturbation_scores`;
- cache: :class:`EvalCache`, :func:`cached` (JSON-lines on disk, resumable);
- executor: where evaluations run, :class:`LocalExecutor` or ``mixq.ray.RayExecutor``
  (:func:`resolve_executor`), and :func:`evaluate_many`, the batch contract between them.
"""

from .algorithms import (
    ALGORITHMS,
    EXHAUSTIVE_LIMIT,
    HistoryEntry,
    SearchResult,
    coordinate_descent,
    exhaustive,
    greedy,
    lambda_sweep,
)
from .baselines import best_of, random_configs, sensitivity_order, uniform
from .cache import CachedEvaluate, EvalCache, cached, canonical_config
from .executor import EXECUTORS, LocalExecutor, evaluate_many, resolve_executor
from .objective import Evaluation, Objective, Problem
from .pareto import evaluation_of, pareto_front
from .sensitivity import fake_quant_layer_weight, hutchinson_trace, perturbation_scores, weight_sqnr

__all__ = [
    "Evaluation",
    "Problem",
    "Objective",
    "HistoryEntry",
    "SearchResult",
    "greedy",
    "coordinate_descent",
    "exhaustive",
    "lambda_sweep",
    "ALGORITHMS",
    "EXHAUSTIVE_LIMIT",
    "pareto_front",
    "evaluation_of",
    "uniform",
    "random_configs",
    "best_of",
    "sensitivity_order",
    "EvalCache",
    "CachedEvaluate",
    "cached",
    "canonical_config",
    "EXECUTORS",
    "LocalExecutor",
    "evaluate_many",
    "resolve_executor",
    "hutchinson_trace",
    "weight_sqnr",
    "perturbation_scores",
    "fake_quant_layer_weight",
]
