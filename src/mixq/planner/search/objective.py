"""What the search optimizes: evaluations of a config, the abstract problem, the objective.

A *config* is a plain dict ``{layer name: precision name}`` covering every layer of the
problem. Evaluating one is expensive (the lead's planner compiles and runs the model), so the
algorithms only see :class:`Problem.evaluate` and count its calls.

Normalization of the objective (all taken from the *reference* config, every layer at
``candidates[0]``, usually fp32):

- ``acc0``: the reference accuracy; the accuracy term is the drop below it, clipped at 0
  (a config more accurate than the reference earns nothing for it);
- ``ai0``: the reference model arithmetic intensity (FLOPs / bytes), so ``AI/ai0`` is 1 at
  the reference and e.g. ~4 when every weight goes from fp32 to int8 in a weight-bound model;
- ``lat0``: the reference latency (latency objective), so ``latency/lat0`` is 1 there;
- ``delta0``: the accuracy scale, 1 accuracy point by default: with λ = 0.5 one point of
  accuracy lost costs as much as one reference-AI of intensity gained.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

__all__ = ["Evaluation", "Problem", "Objective"]


@dataclass(frozen=True)
class Evaluation:
    """What evaluating one config measured.

    accuracy: e.g. top-1 in percent (higher is better).
    ai: model arithmetic intensity of the config, FLOPs / bytes moved (higher is better).
    latency_s: measured or predicted latency in seconds (lower is better), or None.
    """
    accuracy: float
    ai: float
    latency_s: float | None = None

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "ai": self.ai, "latency_s": self.latency_s}

    @classmethod
    def from_dict(cls, d: dict) -> "Evaluation":
        lat = d.get("latency_s")
        return cls(accuracy=float(d["accuracy"]), ai=float(d["ai"]),
                   latency_s=None if lat is None else float(lat))


@dataclass
class Problem:
    """A per-layer precision search problem, independent of any model.

    layers: layer names in execution order.
    candidates: precision names from highest to lowest precision; ``candidates[0]`` is the
        reference (the config with every layer at it defines acc0 / ai0 / lat0).
    evaluate: config ``{layer: precision}`` -> :class:`Evaluation` (expensive).
    allowed: optional per-layer restriction ``{layer: [precisions]}`` (a subset of
        ``candidates``; order is irrelevant, the candidates' order is used). Layers not listed
        may take every candidate. A layer whose allowed list lacks ``candidates[0]`` starts the
        searches at its highest allowed precision (see :meth:`start_config`).
    """
    layers: list[str]
    candidates: list[str]
    evaluate: Callable[[dict[str, str]], Evaluation]
    allowed: dict[str, list[str]] | None = None

    def __post_init__(self):
        self.layers = [str(x) for x in self.layers]
        self.candidates = [str(c) for c in self.candidates]
        if not self.layers:
            raise ValueError("a Problem needs at least one layer")
        if not self.candidates:
            raise ValueError("a Problem needs at least one candidate precision")
        for what, seq in (("layers", self.layers), ("candidates", self.candidates)):
            dup = sorted({x for x in seq if seq.count(x) > 1})
            if dup:
                raise ValueError(f"duplicate {what}: {dup}")
        if not callable(self.evaluate):
            raise TypeError("Problem.evaluate must be callable: config -> Evaluation")
        if self.allowed is not None:
            unknown_layers = sorted(set(self.allowed) - set(self.layers))
            if unknown_layers:
                raise ValueError(f"allowed names layers that are not in the problem: {unknown_layers}")
            for layer, precs in self.allowed.items():
                precs = [str(p) for p in precs]
                bad = [p for p in precs if p not in self.candidates]
                if bad:
                    raise ValueError(f"allowed[{layer!r}] has precisions that are not candidates: {bad}")
                if not precs:
                    raise ValueError(f"allowed[{layer!r}] is empty: a layer needs at least one precision")

    # -- helpers used by the algorithms and baselines --------------------------------------

    def rank(self, precision: str) -> int:
        """Position in ``candidates`` (0 = highest precision)."""
        return self.candidates.index(precision)

    def choices(self, layer: str) -> list[str]:
        """The precisions a layer may take, highest precision first."""
        if self.allowed is None or layer not in self.allowed:
            return list(self.candidates)
        allowed = set(self.allowed[layer])
        return [c for c in self.candidates if c in allowed]

    def lower_choices(self, layer: str, precision: str) -> list[str]:
        """Allowed precisions of ``layer`` strictly below ``precision``, highest first."""
        r = self.rank(precision)
        return [c for c in self.choices(layer) if self.rank(c) > r]

    def reference_config(self) -> dict[str, str]:
        """Every layer at ``candidates[0]`` (what acc0 / ai0 / lat0 are measured on)."""
        return {layer: self.candidates[0] for layer in self.layers}

    def start_config(self) -> dict[str, str]:
        """Every layer at its highest allowed precision (the reference config unless
        ``allowed`` excludes ``candidates[0]`` somewhere). Searches start here and "lowered"
        means strictly below it."""
        return {layer: self.choices(layer)[0] for layer in self.layers}

    def check_config(self, config: dict) -> dict[str, str]:
        """A copy of ``config`` in layer order; ValueError unless it sets every layer (and only
        them) to an allowed precision."""
        if not isinstance(config, dict):
            raise TypeError(f"a config is a dict {{layer: precision}}, got {type(config).__name__}")
        missing = [x for x in self.layers if x not in config]
        extra = sorted(set(map(str, config)) - set(self.layers))
        if missing or extra:
            raise ValueError(f"config must set exactly the problem's layers; missing {missing}, unknown {extra}")
        out = {}
        for layer in self.layers:
            p = str(config[layer])
            if p not in self.choices(layer):
                raise ValueError(f"layer {layer!r}: precision {p!r} is not allowed; choose from {self.choices(layer)}")
            out[layer] = p
        return out

    def n_configs(self) -> int:
        """Size of the search space (product of the per-layer choices)."""
        n = 1
        for layer in self.layers:
            n *= len(self.choices(layer))
        return n


@dataclass(frozen=True)
class Objective:
    """Loss of an evaluated config (lower is better) plus the hard accuracy constraint.

    kind="aiq" (arithmetic-intensity-aware quantization)::

        L(q; λ) = -λ · AI(q)/ai0 + (1-λ) · max(0, acc0 - acc(q)) / delta0

    kind="latency"::

        L(q; λ) =  λ · latency(q)/lat0 + (1-λ) · max(0, acc0 - acc(q)) / delta0

    acc0, ai0, lat0 are the reference config's (every layer at ``candidates[0]``) accuracy,
    arithmetic intensity and latency; delta0 is the accuracy scale, 1 point by default (see
    the module docstring). λ in [0, 1]: 1 = only AI / latency counts, 0 = only accuracy.
    ``lam=None`` means 1 for the latency objective (minimize latency; accuracy enters only
    through ``max_drop``) and is an error for "aiq", which needs an explicit trade-off.

    max_drop: hard constraint ``acc0 - acc(q) <= max_drop`` (in accuracy points); None = no
    constraint. Configs violating it are never returned as best by the algorithms.
    """
    lam: float | None
    acc0: float
    ai0: float | None = None
    delta0: float = 1.0
    max_drop: float | None = None
    kind: str = "aiq"
    lat0: float | None = None

    def __post_init__(self):
        if self.kind not in ("aiq", "latency"):
            raise ValueError(f"kind must be 'aiq' or 'latency', got {self.kind!r}")
        lam = self.lam
        if lam is None:
            if self.kind == "aiq":
                raise ValueError("the aiq objective needs lam (the AI / accuracy trade-off in [0, 1])")
            lam = 1.0
        lam = float(lam)
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lam must lie in [0, 1], got {lam}")
        object.__setattr__(self, "lam", lam)
        if not math.isfinite(self.acc0):
            raise ValueError(f"acc0 must be finite, got {self.acc0}")
        if not (self.delta0 > 0 and math.isfinite(self.delta0)):
            raise ValueError(f"delta0 must be finite and > 0, got {self.delta0}")
        if self.max_drop is not None and not self.max_drop >= 0:
            raise ValueError(f"max_drop must be >= 0 (accuracy points) or None, got {self.max_drop}")
        if self.kind == "aiq" and not (self.ai0 is not None and self.ai0 > 0 and math.isfinite(self.ai0)):
            raise ValueError(f"the aiq objective needs the reference AI ai0 > 0, got {self.ai0}")
        if self.kind == "latency" and not (self.lat0 is not None and self.lat0 > 0 and math.isfinite(self.lat0)):
            raise ValueError(f"the latency objective needs the reference latency lat0 > 0, got {self.lat0}")

    @classmethod
    def from_reference(cls, reference: Evaluation, lam: float | None, **kw) -> "Objective":
        """acc0 / ai0 / lat0 taken from the reference config's evaluation."""
        return cls(lam=lam, acc0=reference.accuracy, ai0=reference.ai, lat0=reference.latency_s, **kw)

    def drop(self, ev: Evaluation) -> float:
        """Accuracy points lost against the reference (negative when more accurate)."""
        return self.acc0 - ev.accuracy

    def feasible(self, ev: Evaluation) -> bool:
        """acc0 - acc(q) <= max_drop (always True without a constraint). NaN accuracy is infeasible."""
        if math.isnan(ev.accuracy):
            return False
        return self.max_drop is None or self.drop(ev) <= self.max_drop

    def terms(self, ev: Evaluation) -> tuple[float, float]:
        """(performance term, accuracy term) before weighting: (-AI/ai0 or latency/lat0,
        max(0, drop)/delta0)."""
        if self.kind == "aiq":
            perf = -ev.ai / self.ai0
        else:
            if ev.latency_s is None:
                raise ValueError("the latency objective needs Evaluation.latency_s, got None")
            perf = ev.latency_s / self.lat0
        return perf, max(0.0, self.drop(ev)) / self.delta0

    def __call__(self, ev: Evaluation) -> float:
        perf, acc = self.terms(ev)
        loss = self.lam * perf + (1.0 - self.lam) * acc
        return float("inf") if math.isnan(loss) else loss

    def key(self, ev: Evaluation) -> tuple[int, float]:
        """Ranking used by the algorithms (smaller is better): any feasible config beats any
        infeasible one; feasible configs compare by loss, infeasible ones by how far they
        violate the constraint (so a search from an infeasible start walks toward feasibility)."""
        if self.feasible(ev):
            return (0, self(ev))
        drop = self.drop(ev)
        return (1, float("inf") if math.isnan(drop) else drop)
