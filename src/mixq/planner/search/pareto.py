"""Pareto fronts of evaluated configs (accuracy vs AI, accuracy vs latency, ...)."""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

from .objective import Evaluation

__all__ = ["pareto_front", "evaluation_of"]

_METRICS = ("accuracy", "ai", "latency_s")


def evaluation_of(point: Any) -> Evaluation:
    """The Evaluation inside a point: an Evaluation, a HistoryEntry (``.evaluation``), a
    SearchResult (``.best_eval``), or a ``(config, Evaluation)`` pair."""
    if isinstance(point, Evaluation):
        return point
    for attr in ("evaluation", "best_eval"):
        ev = getattr(point, attr, None)
        if isinstance(ev, Evaluation):
            return ev
    if isinstance(point, (tuple, list)) and len(point) == 2 and isinstance(point[1], Evaluation):
        return point[1]
    raise TypeError("a Pareto point is an Evaluation, a HistoryEntry, a SearchResult, a (config, Evaluation) "
                    f"pair or a dict of metrics, got {type(point).__name__}")


def _value(point: Any, metric: str):
    if isinstance(point, Mapping):
        if metric not in point:
            raise ValueError(f"a dict point needs the key {metric!r}, got keys {sorted(point)}")
        return point[metric]
    return getattr(evaluation_of(point), metric)


def _alias(name: str) -> str:
    name = "latency_s" if name == "latency" else name
    if name not in _METRICS:
        raise ValueError(f"unknown metric {name!r}; choose from accuracy, ai, latency (latency_s)")
    return name


def pareto_front(points: Iterable[Any], maximize: Sequence[str] = ("accuracy", "ai"),
                 minimize: Sequence[str] = (), unique: bool = False) -> list:
    """The non-dominated points, as the same objects that were passed in.

    points: Evaluations, HistoryEntries, SearchResults, (config, Evaluation) pairs or dicts
    with the metric keys (e.g. ``{"accuracy": .., "ai": .., "label": ..}``); mixed is fine.
    maximize / minimize: metric names among "accuracy", "ai", "latency_s" ("latency" is
    accepted for "latency_s"); e.g. accuracy vs latency is
    ``pareto_front(pts, maximize=("accuracy",), minimize=("latency_s",))``.

    A point is dominated when another is at least as good on every metric and strictly
    better on one. Points with identical metrics do not dominate each other, so all are kept
    (two configs can measure the same); ``unique=True`` keeps only the first of them.
    A metric that is None (no latency) or NaN raises ValueError. The front is returned
    sorted best first by the first metric (ties by the next ones, then input order): with
    the defaults, by decreasing accuracy, so along a two-metric front the AI increases.
    """
    if isinstance(maximize, str) or isinstance(minimize, str):
        raise TypeError("maximize and minimize are sequences of metric names, e.g. ('accuracy', 'ai')")
    metrics = [(_alias(m), 1.0) for m in maximize] + [(_alias(m), -1.0) for m in minimize]
    if not metrics:
        raise ValueError("pareto_front needs at least one metric to maximize or minimize")
    names = [m for m, _ in metrics]
    if len(set(names)) != len(names):
        raise ValueError(f"a metric appears twice: {names}")

    items = []  # (oriented metric vector: larger is better, order of appearance, point)
    for i, pt in enumerate(points):
        vec = []
        for m, sign in metrics:
            v = _value(pt, m)
            if v is None or (isinstance(v, (int, float)) and math.isnan(v)):
                raise ValueError(f"point {i} has no value for {m!r} ({v!r})")
            vec.append(sign * float(v))
        items.append((tuple(vec), i, pt))

    # Sorted best-first lexicographically, a point can only be dominated by points before it,
    # and (dominance being transitive) only needs checking against the front found so far.
    items.sort(key=lambda t: (tuple(-v for v in t[0]), t[1]))
    front: list[tuple[tuple, int, Any]] = []
    for vec, i, pt in items:
        covered = False
        for fv, _, _ in front:
            if all(f >= v for f, v in zip(fv, vec)) and (unique or fv != vec):
                covered = True  # dominated (or, with unique, a repeat of a front point)
                break
        if not covered:
            front.append((vec, i, pt))
    return [pt for _, _, pt in front]
