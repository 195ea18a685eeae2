"""Choosing the next token from logits: greedy, or temperature / top-k / top-p sampling."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sampling:
    """temperature 0 is greedy (argmax); else softmax(logits / temperature) restricted to the
    top_k most likely tokens (0: all) and to the smallest set whose probability reaches top_p."""
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self):
        if not (isinstance(self.temperature, (int, float)) and self.temperature >= 0):
            raise ValueError(f"temperature must be >= 0, got {self.temperature!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be an int >= 0, got {self.top_k!r}")
        if not (isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1):
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")

    @classmethod
    def from_any(cls, value) -> "Sampling":
        if value is None or value == "greedy":
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            return cls(**value)
        raise TypeError(f"sampling must be None, 'greedy', a dict or a Sampling, got {value!r}")

    def picker(self):
        """A function logits [vocab] -> token id (its own random stream)."""
        if self.temperature == 0:
            return lambda logits: int(np.argmax(logits))
        rng = np.random.default_rng(self.seed)

        def pick(logits):
            z = logits.astype(np.float64) / self.temperature
            order = np.argsort(-z, kind="stable")
            if self.top_k:
                order = order[: self.top_k]
            p = np.exp(z[order] - z[order[0]])
            p /= p.sum()
            if self.top_p < 1:
                keep = int(np.searchsorted(np.cumsum(p), self.top_p)) + 1
                order, p = order[:keep], p[:keep] / p[:keep].sum()
            return int(order[rng.choice(len(order), p=p)])

        return pick
