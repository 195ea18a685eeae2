"""A persistent cache of evaluations, so a killed search resumes with nothing lost.

File format: JSON lines, one record per evaluation, appended and flushed as soon as the
evaluation returns::

    {"ns": "<namespace>", "config": {"conv1": "w8a8", ...}, "eval": {"accuracy": 93.1, "ai": 41.2, "latency_s": null}}

Records are keyed by (namespace, canonical JSON of the config: keys sorted, no spaces).
The namespace says what the evaluations are valid for -- the planner passes a digest of the
model, the calibration and the evaluation subset -- so one file can hold several searches
and a stale one is never mixed in. Each record is written with a single ``os.write`` on a
file opened with O_APPEND, so concurrent searches sharing a file do not interleave within
a line. A line that does not parse (a search killed mid-write leaves a partial last line)
is skipped with a warning; the next append starts on a fresh line so it is not glued onto
the fragment.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Callable, Mapping

from .executor import evaluate_many
from .objective import Evaluation

__all__ = ["EvalCache", "CachedEvaluate", "cached", "canonical_config"]


def canonical_config(config: Mapping) -> str:
    """The cache key of a config: JSON with sorted keys, compact separators, str values."""
    return json.dumps({str(k): str(v) for k, v in config.items()}, sort_keys=True, separators=(",", ":"))


def _finite_or_none(x):
    return x if x is None or math.isfinite(x) else str(x)  # keep the JSON standard: nan/inf as strings


class EvalCache:
    """Evaluations of one namespace, loaded from ``path`` (if it exists) and appended to it.

    get(config) -> Evaluation or None; put(config, evaluation) writes and flushes one line
    (and fsyncs it when ``fsync=True``, which survives a machine crash, not only a killed
    process). ``len(cache)`` counts this namespace's entries; ``skipped`` the unreadable lines.
    """

    def __init__(self, path, namespace: str, fsync: bool = False):
        if not isinstance(namespace, str) or not namespace:
            raise ValueError("namespace must be a non-empty string (e.g. a digest of model + data subset)")
        self.path = Path(path)
        self.namespace = namespace
        self.fsync = bool(fsync)
        self.skipped = 0
        self._entries: dict[str, Evaluation] = {}
        self._fd: int | None = None
        self._needs_newline = False
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        self._needs_newline = bool(data) and not data.endswith(b"\n")
        lines = data.split(b"\n")
        for lineno, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
                ns, cfg, ev = rec["ns"], rec["config"], rec["eval"]
                if not isinstance(cfg, dict):
                    raise TypeError("config is not an object")
                ev = Evaluation.from_dict({k: (float(v) if isinstance(v, str) else v) for k, v in ev.items()})
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                self.skipped += 1
                last = lineno == len(lines) or (lineno == len(lines) - 1 and not lines[-1])
                where = "the last line (a write interrupted by a kill?)" if last else f"line {lineno}"
                warnings.warn(f"{self.path}: skipping unreadable {where}: {exc}", RuntimeWarning, stacklevel=3)
                continue
            if ns == self.namespace:
                self._entries.setdefault(canonical_config(cfg), ev)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, config) -> bool:
        return canonical_config(config) in self._entries

    def get(self, config: Mapping) -> Evaluation | None:
        return self._entries.get(canonical_config(config))

    def put(self, config: Mapping, evaluation: Evaluation) -> None:
        if not isinstance(evaluation, Evaluation):
            raise TypeError(f"put() takes an Evaluation, got {type(evaluation).__name__}")
        key = canonical_config(config)
        ev = {k: _finite_or_none(v) for k, v in evaluation.to_dict().items()}
        line = json.dumps({"ns": self.namespace, "config": json.loads(key), "eval": ev}, separators=(",", ":"))
        data = line.encode() + b"\n"
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if self._needs_newline:
            data = b"\n" + data
            self._needs_newline = False
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        if self.fsync:
            os.fsync(self._fd)
        self._entries.setdefault(key, evaluation)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "EvalCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"EvalCache({str(self.path)!r}, namespace={self.namespace!r}, entries={len(self)})"


class CachedEvaluate:
    """``evaluate`` behind an :class:`EvalCache`: a hit returns the stored Evaluation, a miss
    calls ``evaluate`` and stores its result at once. ``hits`` / ``misses`` count configs.
    ``many`` (see :mod:`mixq.planner.search.executor`) sends all the misses of a batch to
    ``evaluate`` together and stores each result as it arrives, so a search killed mid-batch
    keeps every evaluation that finished."""

    def __init__(self, evaluate: Callable[[dict], Evaluation], cache: EvalCache):
        if not callable(evaluate):
            raise TypeError("evaluate must be callable")
        self.evaluate, self.cache = evaluate, cache
        self.hits = 0
        self.misses = 0

    def __call__(self, config: dict) -> Evaluation:
        ev = self.cache.get(config)
        if ev is not None:
            self.hits += 1
            return ev
        self.misses += 1
        ev = self.evaluate(config)
        if not isinstance(ev, Evaluation):
            raise TypeError(f"evaluate must return an Evaluation, got {type(ev).__name__}")
        self.cache.put(config, ev)
        return ev

    def many(self, configs: list[dict], done=None) -> list[Evaluation]:
        results: list[Evaluation | None] = [self.cache.get(c) for c in configs]
        missing = [i for i, ev in enumerate(results) if ev is None]
        self.hits += len(configs) - len(missing)
        self.misses += len(missing)
        if done is not None:
            for i, ev in enumerate(results):
                if ev is not None:
                    done(i, ev)

        def store(j: int, ev: Evaluation) -> None:
            if not isinstance(ev, Evaluation):
                raise TypeError(f"evaluate must return an Evaluation, got {type(ev).__name__}")
            i = missing[j]
            self.cache.put(configs[i], ev)
            results[i] = ev
            if done is not None:
                done(i, ev)

        evaluate_many(self.evaluate, [configs[i] for i in missing], store)
        return results


def cached(evaluate: Callable[[dict], Evaluation], cache: EvalCache) -> CachedEvaluate:
    """Wrap ``evaluate`` with a persistent cache (see :class:`CachedEvaluate`)."""
    return CachedEvaluate(evaluate, cache)
