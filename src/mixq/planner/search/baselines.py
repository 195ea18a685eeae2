"""Baselines the AIQ search is compared against: uniform precision, random mixed configs,
and lowering layers in order of a sensitivity score."""
from __future__ import annotations

import itertools
import math
from typing import Iterable, Mapping

import numpy as np

from .algorithms import SearchResult, _Run
from .objective import Objective, Problem

__all__ = ["uniform", "random_configs", "best_of", "sensitivity_order"]

_ENUMERATE_LIMIT = 100_000


def uniform(problem: Problem, precision: str, strict: bool = False) -> dict[str, str]:
    """Every layer at ``precision`` (one of the problem's candidates). A layer whose
    ``allowed`` list lacks it gets the closest allowed precision above it (the safer side),
    or, if none is above, the closest below; ``strict=True`` raises ValueError instead."""
    precision = str(precision)
    if precision not in problem.candidates:
        raise ValueError(f"{precision!r} is not a candidate; choose from {problem.candidates}")
    r = problem.rank(precision)
    out = {}
    for layer in problem.layers:
        choices = problem.choices(layer)
        if precision in choices:
            out[layer] = precision
        elif strict:
            raise ValueError(f"layer {layer!r} does not allow {precision!r} (allowed: {choices})")
        else:
            above = [c for c in choices if problem.rank(c) < r]
            out[layer] = above[-1] if above else choices[0]
    return out


def _n_subsets_weighted(counts: list[int], n: int) -> int:
    """Sum over n-subsets of prod(counts): the elementary symmetric polynomial e_n(counts)."""
    e = [1] + [0] * n
    for c in counts:
        for j in range(n, 0, -1):
            e[j] += e[j - 1] * c
    return e[n]


def random_configs(problem: Problem, n_lowered: int, count: int, seed: int = 0) -> list[dict[str, str]]:
    """``count`` distinct random configs with exactly ``n_lowered`` layers below their start
    precision (see :meth:`Problem.start_config`; the reference unless ``allowed`` says
    otherwise) and the other layers at it.

    Distribution: the set of lowered layers is uniform among the ``n_lowered``-subsets of the
    layers that can be lowered, and each lowered layer's precision is uniform among its lower
    allowed candidates; duplicates are redrawn (equivalently: sampled without replacement).
    Deterministic for a given seed. ValueError if fewer than ``count`` such configs exist.
    """
    if isinstance(n_lowered, bool) or not isinstance(n_lowered, (int, np.integer)) or n_lowered < 0:
        raise ValueError(f"n_lowered must be an int >= 0, got {n_lowered!r}")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be an int >= 0, got {count!r}")
    start = problem.start_config()
    lowerable = [layer for layer in problem.layers if problem.lower_choices(layer, start[layer])]
    lower = {layer: problem.lower_choices(layer, start[layer]) for layer in lowerable}
    if n_lowered > len(lowerable):
        raise ValueError(f"n_lowered={n_lowered} but only {len(lowerable)} layers can be lowered")
    total = _n_subsets_weighted([len(lower[x]) for x in lowerable], int(n_lowered))
    if count > total:
        raise ValueError(f"only {total} distinct configs lower exactly {n_lowered} layers; asked for {count}")
    rng = np.random.default_rng(seed)

    def make(layers_and_precs) -> dict[str, str]:
        cfg = dict(start)
        cfg.update(layers_and_precs)
        return cfg

    if total <= _ENUMERATE_LIMIT:
        all_cfgs, weights = [], []
        n_sub = math.comb(len(lowerable), n_lowered)
        for subset in itertools.combinations(lowerable, n_lowered):
            p_sub = 1.0 / n_sub / math.prod(len(lower[x]) for x in subset)
            for precs in itertools.product(*(lower[x] for x in subset)):
                all_cfgs.append(tuple(zip(subset, precs)))
                weights.append(p_sub)
        w = np.asarray(weights)
        idx = rng.choice(len(all_cfgs), size=int(count), replace=False, p=w / w.sum())
        return [make(all_cfgs[i]) for i in idx]

    out, seen = [], set()
    while len(out) < count:
        pick = sorted(rng.choice(len(lowerable), size=int(n_lowered), replace=False))
        chosen = tuple((lowerable[i], lower[lowerable[i]][int(rng.integers(len(lower[lowerable[i]])))])
                       for i in pick)
        if chosen not in seen:
            seen.add(chosen)
            out.append(make(chosen))
    return out


def best_of(problem: Problem, objective: Objective, configs: Iterable[Mapping[str, str]], name: str = "best_of",
            progress: bool = False, *, memo: dict | None = None) -> SearchResult:
    """Evaluate the given configs (e.g. :func:`random_configs`, :func:`uniform` ones) and
    return the best by the usual ranking (feasible first, then loss) as a SearchResult."""
    configs = [problem.check_config(dict(c)) for c in configs]
    if not configs:
        raise ValueError("best_of needs at least one config")
    run = _Run(problem, objective, memo, progress, name, total=len(configs))
    best = None
    for i, cfg in enumerate(configs):
        e = run.look(cfg, f"{name} #{i}")
        if run.better(e, best):
            best = run.accept(e)
    return run.result(best)


def sensitivity_order(problem: Problem, scores: Mapping[str, float], objective: Objective, mode: str = "lowest",
                      progress: bool = False, *, memo: dict | None = None) -> SearchResult:
    """Lower layers one at a time from least to most sensitive (ascending ``scores``, ties in
    layer order), keep going while the result stays feasible, and return the best feasible
    config seen along the way (by loss; the start config counts).

    mode="lowest" (default): each layer goes straight to its lowest allowed precision, in
    one step -- the classic "sensitivity list" baseline (e.g. HAWQ-style ordering).
    mode="step": passes over the ordered layers lowering each by one allowed precision per
    pass (all layers to w8a8 first, then to w4a8, ...), so the cheap step of a sensitive
    layer comes before the expensive step of an insensitive one.
    Either way the walk stops at the first infeasible config. scores must cover every layer
    that can be lowered (extra names are ignored); layers that cannot be lowered are skipped.
    """
    if mode not in ("lowest", "step"):
        raise ValueError(f"mode must be 'lowest' or 'step', got {mode!r}")
    start = problem.start_config()
    lowerable = [layer for layer in problem.layers if problem.lower_choices(layer, start[layer])]
    missing = [x for x in lowerable if x not in scores]
    if missing:
        raise ValueError(f"scores are missing for layers {missing}")
    bad = [x for x in lowerable if not math.isfinite(float(scores[x]))]
    if bad:
        raise ValueError(f"scores must be finite numbers; not for {bad}")
    pos = {x: i for i, x in enumerate(problem.layers)}
    order = sorted(lowerable, key=lambda x: (float(scores[x]), pos[x]))

    run = _Run(problem, objective, memo, progress, f"sensitivity_order[{mode}]")
    cur = run.accept(run.look(start, "start"))
    best = cur
    if not objective.feasible(cur.evaluation):
        return run.result(best)

    def steps():
        if mode == "lowest":
            for layer in order:
                yield layer, problem.choices(layer)[-1]
            return
        level = dict(start)
        while True:
            moved = False
            for layer in order:
                lower = problem.lower_choices(layer, level[layer])
                if lower:
                    level[layer] = lower[0]
                    moved = True
                    yield layer, lower[0]
            if not moved:
                return

    for k, (layer, prec) in enumerate(steps(), start=1):
        cfg = dict(cur.config)
        cfg[layer] = prec
        e = run.look(cfg, f"step {k}: {layer} {cur.config[layer]} -> {prec} (score {float(scores[layer]):.4g})")
        if not objective.feasible(e.evaluation):
            break
        cur = run.accept(e)
        if run.better(cur, best):
            best = cur
    return run.result(best)
