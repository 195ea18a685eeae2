"""Where a search's evaluations run: in this process one after another (``"local"``), or as
tasks on a Ray cluster (``"ray"``, :mod:`mixq.ray`).

The algorithms hand over every config they are about to look at together (a greedy round's
moves, a coordinate step's alternatives), so an executor that runs several at once can. The
contract between them is small: an *evaluate* is a callable ``config -> Evaluation``; one that can
run several configs at once also has ``many(configs, done) -> [Evaluation]``, which returns the
evaluations in the order of ``configs`` and calls ``done(index, evaluation)`` as each one finishes
(in any order), so a disk cache stores each result the moment it exists.

An executor turns the search's evaluate into such a callable: ``executor.evaluator(evaluate,
progress)``. ``remote`` says whether evaluate leaves this process (then it must be picklable, and
the model search ships a torch-free copy of its compiler).
"""
from __future__ import annotations

from typing import Callable, Sequence

from .objective import Evaluation

__all__ = ["EXECUTORS", "LocalExecutor", "evaluate_many", "resolve_executor"]

EXECUTORS = ("local", "ray")

Done = Callable[[int, Evaluation], None]


def evaluate_many(evaluate: Callable, configs: Sequence[dict], done: Done | None = None) -> list[Evaluation]:
    """The evaluations of ``configs`` in order: by ``evaluate.many`` when it has one (several at
    once), else one call after another. ``done(i, evaluation)`` as each one finishes."""
    many = getattr(evaluate, "many", None)
    if many is not None:
        return many(list(configs), done)
    out = []
    for i, config in enumerate(configs):
        ev = evaluate(config)
        out.append(ev)
        if done is not None:
            done(i, ev)
    return out


class LocalExecutor:
    """Today's loop: every evaluation in this process, one after another."""
    name = "local"
    remote = False

    def evaluator(self, evaluate: Callable, progress: bool = True) -> Callable:
        return evaluate

    def __repr__(self) -> str:
        return "LocalExecutor()"


def resolve_executor(executor):
    """An executor object from ``"local"``, ``"ray"`` (a :class:`mixq.ray.RayExecutor` with its
    defaults) or an executor object (anything with ``evaluator`` and ``remote``), e.g.
    ``mixq.ray.RayExecutor(address="ray://head:10001", workers=16)``."""
    if isinstance(executor, str):
        if executor == "local":
            return LocalExecutor()
        if executor == "ray":
            from ...ray import RayExecutor  # imports ray only when it is used

            return RayExecutor()
        raise ValueError(f"executor must be one of {list(EXECUTORS)} or an executor object, got {executor!r}")
    if callable(getattr(executor, "evaluator", None)) and hasattr(executor, "remote"):
        return executor
    raise TypeError(f"executor must be one of {list(EXECUTORS)} or an executor object "
                    f"(e.g. mixq.ray.RayExecutor(...)), got {type(executor).__name__}")
