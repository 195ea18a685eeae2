"""The precision search's evaluations on a Ray cluster: ``mixq.search(..., executor="ray")``.

The search's evaluate (for a model: a torch-free ConfigEvaluator holding the captured graph, the
calibrated activation ranges and the user's scoring function with its validation data) is put
into Ray's object store once. One actor per worker loads it once and keeps it warm (its compiler
also keeps the weights it packed), then evaluates configs one at a time as the driver hands them
out; results come back to the driver, which stores each in the search's disk cache as it arrives.

Faults: when a worker process dies mid-evaluation (killed, out of memory, its node lost), Ray
restarts the actor (up to ``max_retries`` times) and the driver hands the lost config out again
(up to ``max_retries`` times per config), saying so on the log. Evaluations that finished are in
the cache already; nothing is evaluated twice. An exception raised by evaluate itself is not
retried (it would raise again): the search stops with it.
"""
from __future__ import annotations

import os
import time
from collections import Counter, deque
from typing import Callable

from .cluster import check_address, connect
from .require import require_ray

__all__ = ["RayExecutor", "RayEvaluate", "SearchWorker"]


class RayExecutor:
    """Where a search's evaluations run on Ray (see the module docstring).

    address: None = the Ray this process joined (``ray.init``), else ``$RAY_ADDRESS``, else a new
        local Ray on this machine, shut down when the search ends; or ``"auto"``, ``"HOST:6379"``,
        ``"ray://HOST:10001"``.
    workers: actors, one evaluation at a time each (default: the cluster's CPUs divided by
        ``threads_per_worker``); workers x threads_per_worker must fit the cluster's CPUs.
    threads_per_worker: mixq threads of each actor, and the CPUs it reserves (default 1: no
        oversubscription; an evaluation's result does not depend on it).
    max_retries: how often one config is handed out again after its worker died, and how often
        Ray restarts each actor.
    runtime_env: Ray's runtime_env for the actors (e.g. ``{"pip": ["mixq[ray]"]}``, or
        ``{"env_vars": {"MIXQ_ISA": "avx2"}}`` to run one kernel path on a mixed cluster).
    init_kwargs: more arguments for ``ray.init`` when this executor connects.
    log: where messages go (default: stderr, keeping a progress bar intact); worker deaths are
        always reported, the start and summary lines only with progress on.
    """
    name = "ray"
    remote = True

    def __init__(self, address: str | None = None, workers: int | None = None, threads_per_worker: int = 1,
                 max_retries: int = 3, runtime_env: dict | None = None, init_kwargs: dict | None = None,
                 log: Callable[[str], None] | None = None):
        require_ray('executor="ray"')
        self.address = check_address(address)
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers must be a positive int or None, got {workers!r}")
        if not isinstance(threads_per_worker, int) or threads_per_worker < 1:
            raise ValueError(f"threads_per_worker must be a positive int, got {threads_per_worker!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        self.workers, self.threads_per_worker, self.max_retries = workers, threads_per_worker, max_retries
        self.runtime_env, self.init_kwargs = runtime_env, init_kwargs
        if log is None:
            from ..progress import note as log
        self.log = log

    def evaluator(self, evaluate: Callable, progress: bool = True) -> "RayEvaluate":
        """Connects, ships ``evaluate`` and starts the actors; ``close()`` the result when done."""
        return RayEvaluate(self, evaluate, progress)

    def __repr__(self) -> str:
        return (f"RayExecutor(address={self.address!r}, workers={self.workers}, "
                f"threads_per_worker={self.threads_per_worker}, max_retries={self.max_retries})")


class SearchWorker:
    """One actor's state: the search's evaluate, fetched once from the object store and kept.

    The object ref travels with each call (wrapped in a list, so that Ray passes the ref rather
    than the object) instead of with the constructor: a restarted actor then fetches it again on
    its first call, from the copy the driver keeps alive.
    """

    def __init__(self, threads: int):
        from .. import ops

        ops.set_num_threads(threads)  # fixed, whatever the node's default: no oversubscription
        self.evaluate_config = None

    def _load(self, payload: list) -> None:
        if self.evaluate_config is None:
            import ray

            self.evaluate_config = ray.get(payload[0])

    def info(self, payload: list) -> dict:
        import socket

        from .. import ops

        self._load(payload)
        return dict(pid=os.getpid(), host=socket.gethostname(), isa=ops.cpu_info()["isa"],
                    threads=ops.get_num_threads())

    def evaluate(self, payload: list, config: dict):
        self._load(payload)
        return self.evaluate_config(config), os.getpid()


def _describe(config: dict) -> str:
    """A config in a few words: how many layers at each precision."""
    return ", ".join(f"{n} x {p}" for p, n in Counter(config.values()).most_common())


class RayEvaluate:
    """The search's evaluate on a pool of Ray actors: call it on one config, ``many`` on a batch
    (see mixq.planner.search.executor); ``close()`` ends the actors (and a Ray it started).
    ``evaluations`` counts finished evaluations, ``retried`` the configs handed out again."""

    def __init__(self, executor: RayExecutor, evaluate: Callable, progress: bool = True):
        self.ray = ray = require_ray('executor="ray"')
        self.executor, self.progress = executor, progress
        self.log = executor.log
        self.actors: list = []
        self.evaluations = self.retried = 0
        self.deaths: Counter = Counter()
        self.started_ray = connect(executor.address, executor.init_kwargs)
        self.t0 = time.perf_counter()
        try:
            self._start(ray, evaluate)
        except BaseException:
            self.close()
            raise

    def _start(self, ray, evaluate) -> None:
        ex = self.executor
        try:
            self.payload = ray.put(evaluate)  # once: every actor reads this one copy
        except Exception as e:  # cloudpickle's errors vary (TypeError, PicklingError, ...)
            raise TypeError(f'executor="ray" ships evaluate to the workers, so it must be picklable: {e}') from e
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n = ex.workers or max(1, cpus // ex.threads_per_worker)
        if n * ex.threads_per_worker > cpus:  # the extra actors would wait for CPUs forever
            raise ValueError(f"{n} Ray workers x {ex.threads_per_worker} threads need {n * ex.threads_per_worker} "
                             f"CPUs; the cluster has {cpus}")
        options = dict(num_cpus=ex.threads_per_worker, max_restarts=ex.max_retries, max_task_retries=0)
        if ex.runtime_env is not None:
            options["runtime_env"] = ex.runtime_env
        worker = ray.remote(SearchWorker).options(**options)
        self.actors = [worker.remote(ex.threads_per_worker) for _ in range(n)]
        try:
            infos = ray.get([a.info.remote([self.payload]) for a in self.actors])
        except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as e:
            raise RuntimeError("the Ray workers could not load the search: is this mixq installed on every node, "
                               "and is the module that defines evaluate importable there (runtime_env)? "
                               f"Ray said: {e}") from e
        self.pids = [i["pid"] for i in infos]
        from .. import ops

        here = ops.cpu_info()["isa"]
        for i in infos:
            if i["isa"] != here:  # int8 is exact on every path; float layers may differ in last bits
                self.log(f"ray: warning: a worker on {i['host']} runs the {i['isa']} kernels, this process "
                         f"{here}: float layers may round differently, so the picks may differ from a local run "
                         f"(pin one path with runtime_env={{'env_vars': {{'MIXQ_ISA': ...}}}})")
                break
        if self.progress:
            hosts = len({i["host"] for i in infos})
            self.log(f"ray: {n} workers ({ex.threads_per_worker} thread{'s' * (ex.threads_per_worker > 1)} each) "
                     f"on {hosts} node{'s' * (hosts > 1)}, evaluate shipped once ({_shipped_mb(evaluate):.1f} MB)")

    def __call__(self, config: dict):
        return self.many([config])[0]

    def many(self, configs: list[dict], done=None) -> list:
        """Evaluations of ``configs`` in order; ``done(i, evaluation)`` as each one arrives."""
        ray = self.ray
        results: list = [None] * len(configs)
        queue = deque(range(len(configs)))
        attempts: Counter = Counter()
        idle = deque(w for w in range(len(self.actors)) if not self._gone(w))
        running: dict = {}  # ObjectRef -> (worker, config index)
        while queue or running:
            while queue and idle:
                w, i = idle.popleft(), queue.popleft()
                running[self.actors[w].evaluate.remote([self.payload], configs[i])] = (w, i)
            if not running:
                raise RuntimeError(f"every Ray worker died more than max_retries={self.executor.max_retries} times; "
                                   f"{len(queue)} evaluations left undone (the finished ones are in the cache)")
            [ref], _ = ray.wait(list(running), num_returns=1)
            w, i = running.pop(ref)
            try:
                ev, self.pids[w] = ray.get(ref)
            except ray.exceptions.RayTaskError as e:  # evaluate itself raised: the same again on a retry
                raise e.as_instanceof_cause() from None
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as e:
                self._lost(w, i, configs[i], attempts, e)
                queue.appendleft(i)
                if not self._gone(w):
                    idle.append(w)  # Ray restarts it; a call sent meanwhile waits for the restart
                continue
            idle.append(w)
            results[i] = ev
            self.evaluations += 1
            if done is not None:
                done(i, ev)
        return results

    def _gone(self, w: int) -> bool:
        return self.deaths[w] > self.executor.max_retries

    def _lost(self, w: int, i: int, config: dict, attempts: Counter, error) -> None:
        """Book-keeping and the log line for an evaluation whose worker died."""
        self.deaths[w] += 1
        attempts[i] += 1
        limit = self.executor.max_retries
        what = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
        if attempts[i] > limit:
            raise RuntimeError(f"ray: the evaluation of a config ({_describe(config)}) lost its worker "
                               f"{attempts[i]} times (max_retries={limit}); last: {what}") from error
        self.retried += 1
        fate = ("Ray restarts it" if not self._gone(w) else
                f"it is not restarted again (max_retries={limit}); the other workers go on")
        self.log(f"ray: worker {w} (pid {self.pids[w]}) died while evaluating a config ({_describe(config)}): "
                 f"{what}; {fate}; the config is retried (attempt {attempts[i] + 1} of {limit + 1}), "
                 f"finished evaluations are kept")

    def close(self) -> None:
        """Ends the actors, and the local Ray when this executor started it."""
        ray = self.ray
        for a in self.actors:
            try:
                ray.kill(a)
            except Exception:  # already dead: nothing to end
                pass
        if self.actors and self.progress:
            took = time.perf_counter() - self.t0
            self.log(f"ray: {self.evaluations} evaluations on {len(self.actors)} workers in {took:.1f} s"
                     + (f", {self.retried} retried after a worker died" if self.retried else ""))
        self.actors = []
        if self.started_ray and ray.is_initialized():
            ray.shutdown()
        self.started_ray = False


def _shipped_mb(obj) -> float:
    """Size of what the object store holds for ``obj`` (Ray pickles it the same way)."""
    from ray import cloudpickle

    return len(cloudpickle.dumps(obj)) / 1e6
