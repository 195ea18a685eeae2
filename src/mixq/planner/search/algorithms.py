"""Search algorithms over a :class:`~mixq.planner.search.objective.Problem`.

All are deterministic (no randomness at all: ties go to the first candidate in layer order,
then in candidate order). Every algorithm

- ranks evaluations with :meth:`Objective.key`: a feasible config beats any infeasible one,
  feasible ones compare by loss, infeasible ones by their constraint violation. An
  infeasible config is therefore never returned as best while a feasible one was seen; if
  none was, the result says ``feasible=False`` and a warning is issued;
- accepts a change only on a strict improvement (relative tolerance 1e-12, so float noise
  cannot make a search cycle);
- evaluates each distinct config at most once per run (an in-memory memo keyed by the
  config; pass the same ``memo`` dict to several runs, e.g. a λ sweep, to share it).
  ``SearchResult.evaluations`` counts configs handed to ``problem.evaluate`` by the run (a disk
  cache behind ``evaluate`` may still answer some of them, see :mod:`mixq.planner.search.cache`);
- hands over together the configs whose choice does not depend on each other's results (all
  moves of a greedy round, a coordinate step's alternatives, exhaustive's configs in chunks),
  so an executor that runs evaluations in parallel can (:mod:`mixq.planner.search.executor`).
  The history stays in the order a one-at-a-time run looks at them: a run's answer does not
  depend on where or in what order its evaluations ran.
"""
from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .executor import evaluate_many
from .objective import Evaluation, Objective, Problem

__all__ = ["HistoryEntry", "SearchResult", "greedy", "coordinate_descent", "exhaustive",
           "lambda_sweep", "ALGORITHMS", "EXHAUSTIVE_LIMIT"]

EXHAUSTIVE_LIMIT = 50_000
_EXHAUSTIVE_CHUNK = 256  # configs handed over at once: enough to keep a cluster busy, few in memory
_REL_TOL = 1e-12


@dataclass(frozen=True)
class HistoryEntry:
    """One config looked at by a run: its evaluation, its loss under the run's objective and
    a note saying why it was looked at (e.g. ``"greedy round 2: conv1 w8a8 -> w4a8"``)."""
    config: dict[str, str]
    evaluation: Evaluation
    loss: float
    note: str = ""


@dataclass
class SearchResult:
    """best: the chosen config; best_eval / best_loss: its evaluation and loss.
    history: every distinct config the run looked at, in order (once each).
    evaluations: calls to ``problem.evaluate`` made by the run (memo hits excluded).
    feasible: whether ``best`` satisfies the objective's max_drop.
    trajectory: the accepted steps (start config first, ``best`` last).
    converged: False when coordinate descent stopped at max_sweeps while still changing.
    algorithm: name of the algorithm; lam: the objective's λ.
    """
    best: dict[str, str]
    best_eval: Evaluation
    best_loss: float
    history: list[HistoryEntry]
    evaluations: int
    feasible: bool = True
    trajectory: list[HistoryEntry] = field(default_factory=list)
    converged: bool = True
    algorithm: str = ""
    lam: float | None = None


# -------------------------------------------------------------------------------------------


def _progress_bar(enabled: bool, desc: str, total: int | None):
    from ...progress import progress

    return progress(total=total, desc=desc, unit="cfg", enabled=enabled)


def _better(a: tuple[int, float], b: tuple[int, float]) -> bool:
    """Ranking key a strictly better than b (beyond a relative tolerance)."""
    if a[0] != b[0]:
        return a[0] < b[0]
    return a[1] < b[1] - _REL_TOL * max(1.0, abs(b[1]))


class _Run:
    """Book-keeping shared by the algorithms: memo, history, evaluation count, progress."""

    def __init__(self, problem: Problem, objective: Objective, memo: dict | None, progress: bool,
                 name: str, total: int | None = None):
        if not isinstance(problem, Problem):
            raise TypeError(f"problem must be a mixq.planner.search.Problem, got {type(problem).__name__}")
        if not isinstance(objective, Objective):
            raise TypeError(f"objective must be a mixq.planner.search.Objective, got {type(objective).__name__}")
        self.problem, self.objective, self.name = problem, objective, name
        self.memo = {} if memo is None else memo
        self.seen: dict[tuple, HistoryEntry] = {}
        self.history: list[HistoryEntry] = []
        self.trajectory: list[HistoryEntry] = []
        self.calls = 0
        self.best: HistoryEntry | None = None
        self.bar = _progress_bar(progress, name, total)

    def key(self, entry: HistoryEntry) -> tuple[int, float]:
        return self.objective.key(entry.evaluation)

    def better(self, a: HistoryEntry, b: HistoryEntry | None) -> bool:
        return b is None or _better(self.key(a), self.key(b))

    def _key(self, config: dict[str, str]) -> tuple:
        return tuple(config[layer] for layer in self.problem.layers)

    def look(self, config: dict[str, str], note: str) -> HistoryEntry:
        return self.look_all([(config, note)])[0]

    def look_all(self, items: list[tuple[dict[str, str], str]]) -> list[HistoryEntry]:
        """look at each (config, note) in order; the configs neither seen nor memoized are
        evaluated first, all in one batch (in parallel on an executor that can)."""
        todo: dict[tuple, dict] = {}
        for config, _ in items:
            k = self._key(config)
            if k not in self.seen and k not in self.memo:
                todo.setdefault(k, dict(config))

        keys = list(todo)

        def finished(i: int, ev: Evaluation) -> None:  # as each one finishes: a batch can be long
            if not isinstance(ev, Evaluation):
                raise TypeError(f"problem.evaluate must return an Evaluation, got {type(ev).__name__}")
            self.memo[keys[i]] = ev  # kept even if a later one of the batch is interrupted
            if self.bar is not None:
                self.bar.update(1)

        if todo:
            try:
                evaluate_many(self.problem.evaluate, list(todo.values()), finished)
            except BaseException:  # e.g. KeyboardInterrupt: leave the terminal clean
                if self.bar is not None:
                    self.bar.close()
                raise
            self.calls += len(todo)
        return [self._record(config, note, counted=self._key(config) in todo) for config, note in items]

    def _record(self, config: dict[str, str], note: str, counted: bool) -> HistoryEntry:
        k = self._key(config)
        entry = self.seen.get(k)
        if entry is not None:
            return entry
        ev = self.memo[k]
        entry = HistoryEntry(dict(config), ev, self.objective(ev), note)
        self.seen[k] = entry
        self.history.append(entry)
        if self.better(entry, self.best):
            self.best = entry
        if self.bar is not None:
            if not counted:
                self.bar.update(1)
            self.bar.set_postfix(evals=self.calls, best=f"{self.best.loss:.4g}")
        return entry

    def accept(self, entry: HistoryEntry) -> HistoryEntry:
        self.trajectory.append(entry)
        return entry

    def result(self, best: HistoryEntry, converged: bool = True) -> SearchResult:
        if self.bar is not None:
            self.bar.close()
        feasible = self.objective.feasible(best.evaluation)
        if not feasible:
            warnings.warn(f"{self.name}: no config satisfies max_drop={self.objective.max_drop}; "
                          f"returning the least infeasible one (drop {self.objective.drop(best.evaluation):.3g})",
                          RuntimeWarning, stacklevel=3)
        return SearchResult(best=dict(best.config), best_eval=best.evaluation, best_loss=best.loss,
                            history=list(self.history), evaluations=self.calls, feasible=feasible,
                            trajectory=list(self.trajectory), converged=converged, algorithm=self.name,
                            lam=self.objective.lam)


# -------------------------------------------------------------------------------------------


def greedy(problem: Problem, objective: Objective, progress: bool = False, *, lower_further: bool = True,
           memo: dict | None = None) -> SearchResult:
    """Greedy lowering from the start config (every layer at its highest allowed precision).

    Each round tries every move -- one layer set to one strictly lower allowed precision --
    and accepts the move with the best ranking key (see the module docstring) if it is
    feasible and strictly improves on the current config; it stops when no move does.

    Choice: with ``lower_further=True`` (default) an already lowered layer may be lowered
    again in a later round (fp32 -> w8a8 -> w4a8), since with a loss that rewards AI the
    first step often pays for the second; moves straight to any lower precision are tried
    too, so the greedy never has to pass through a precision it does not want. With
    ``lower_further=False`` a layer is lowered at most once (the classic one-shot greedy).
    A round costs at most sum over layers of the lower choices; memoized configs are free.
    """
    run = _Run(problem, objective, memo, progress, "greedy")
    cur = run.accept(run.look(problem.start_config(), "start"))
    start = cur.config
    rnd = 0
    while True:
        rnd += 1
        moves = []
        for layer in problem.layers:
            now = cur.config[layer]
            if not lower_further and now != start[layer]:
                continue
            for p in problem.lower_choices(layer, now):
                moves.append(({**cur.config, layer: p}, f"greedy round {rnd}: {layer} {now} -> {p}"))
        best_move = None
        for e in run.look_all(moves):
            if objective.feasible(e.evaluation) and run.better(e, best_move):
                best_move = e
        if best_move is None or not run.better(best_move, cur):
            break
        cur = run.accept(best_move)
    return run.result(cur)


def coordinate_descent(problem: Problem, objective: Objective, start: dict[str, str] | None = None,
                       max_sweeps: int = 10, progress: bool = False, *, memo: dict | None = None) -> SearchResult:
    """Coordinate descent: sweep the layers in execution order, setting each to its best
    allowed precision (up or down) with the others fixed; stop after a full sweep that changes
    nothing (``converged=True``) or after ``max_sweeps`` sweeps (``converged=False``).

    start: the initial config (e.g. a greedy result's ``best``); default: the start config
    (every layer at its highest allowed precision). An infeasible start is allowed: the
    ranking key moves the search toward feasibility first.
    """
    if max_sweeps < 1:
        raise ValueError(f"max_sweeps must be >= 1, got {max_sweeps}")
    cfg0 = problem.start_config() if start is None else problem.check_config(start)
    run = _Run(problem, objective, memo, progress, "coordinate_descent")
    cur = run.accept(run.look(cfg0, "start"))
    converged = False
    for sweep in range(1, max_sweeps + 1):
        changed = False
        for layer in problem.layers:
            now = cur.config[layer]
            best = cur
            for e in run.look_all([({**cur.config, layer: p}, f"sweep {sweep}: {layer} {now} -> {p}")
                                   for p in problem.choices(layer) if p != now]):
                if run.better(e, best):
                    best = e
            if best is not cur:
                cur = run.accept(best)
                changed = True
        if not changed:
            converged = True
            break
    return run.result(cur, converged=converged)


def exhaustive(problem: Problem, objective: Objective, progress: bool = False, *,
               limit: int = EXHAUSTIVE_LIMIT, memo: dict | None = None) -> SearchResult:
    """Evaluate every config (product of the per-layer allowed precisions) and return the
    best. Refuses (ValueError, before any evaluation) problems with more than ``limit``
    configs (default 50 000)."""
    n = problem.n_configs()
    if n > limit:
        raise ValueError(f"exhaustive search over {n} configs refused (limit {limit}): "
                         f"{len(problem.layers)} layers; use greedy or coordinate_descent")
    run = _Run(problem, objective, memo, progress, "exhaustive", total=n)
    best = None
    combos = enumerate(itertools.product(*(problem.choices(layer) for layer in problem.layers)))
    while chunk := list(itertools.islice(combos, _EXHAUSTIVE_CHUNK)):
        for e in run.look_all([(dict(zip(problem.layers, combo)), f"exhaustive #{i}") for i, combo in chunk]):
            if run.better(e, best):
                best = run.accept(e)
    return run.result(best)


ALGORITHMS: dict[str, Callable[..., SearchResult]] = {
    "greedy": greedy,
    "coordinate": coordinate_descent,
    "coordinate_descent": coordinate_descent,
    "exhaustive": exhaustive,
}


def lambda_sweep(problem: Problem, lambdas: Iterable[float], make_objective: Callable[[float], Objective],
                 algorithm: str | Callable[..., SearchResult] = "greedy", *, memo: dict | None = None,
                 **kwargs) -> list[SearchResult]:
    """Run ``algorithm`` once per λ with ``make_objective(λ)``; returns the results in the
    order of ``lambdas``. Evaluations do not depend on λ, so the runs share one memo: a
    config evaluated for one λ is not evaluated again for another (each result's
    ``evaluations`` counts only its own new calls). ``algorithm``: "greedy", "coordinate"
    (= "coordinate_descent"), "exhaustive", or a callable with the same signature;
    ``kwargs`` go to it (e.g. ``progress=True``). Feed the results (or their histories) to
    :func:`mixq.planner.search.pareto_front` for the trade-off curve."""
    if isinstance(algorithm, str):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {sorted(ALGORITHMS)} or a callable, got {algorithm!r}")
        run = ALGORITHMS[algorithm]
    elif callable(algorithm):
        run = algorithm
    else:
        raise TypeError(f"algorithm must be a name or a callable, got {type(algorithm).__name__}")
    shared = {} if memo is None else memo
    return [run(problem, make_objective(float(lam)), memo=shared, **kwargs) for lam in lambdas]
