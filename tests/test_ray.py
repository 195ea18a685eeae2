"""mixq on Ray (mixq.ray): the search's ray executor gives the local executor's answers on
ResNet-20, survives a worker killed mid-search with every evaluation stored once, resumes a cache
across executors; map_batches scores a folder of images as plan.run does; bad input fails clearly.

The Ray tests share one local Ray (2 CPUs) for the module and skip, with the reason, when Ray is
not installed (CI installs the extra). Search: greedy over w8a8 / w4a8-g128 on 32 validation images
(about 250 evaluations of ~20 ms).
"""
from __future__ import annotations

import functools
import json
import os
import signal
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import mixq

try:
    import ray
except ImportError:
    ray = None

# Ray Data's own deprecation notices about its settings, not ours
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")

needs_ray = pytest.mark.skipif(ray is None, reason="Ray is an optional extra: pip install '.[ray]' (CI installs it)")

CANDIDATES = ("w8a8", "w4a8-g128")
VAL_SIZE = 32


@pytest.fixture(scope="module")
def ray_cluster():
    from ray import cloudpickle

    # The kill-once wrapper below lives in this module, which the workers cannot import.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def task():
    import torch

    from mixq import models
    from mixq.planner.study import accuracy, fashion_mnist_data

    data = fashion_mnist_data(VAL_SIZE, seed=0)
    return dict(model=models.get("resnet20", pretrained=True), x=torch.from_numpy(data.x_val[:1]),
                calibration=data.calibration, evaluate=functools.partial(accuracy, x=data.x_val, y=data.y_val))


def run_search(task, cache_path, executor="local", evaluate=None, progress=False):
    return mixq.search(task["model"], task["x"], task["calibration"], evaluate or task["evaluate"],
                       candidates=CANDIDATES, algorithm="greedy", max_drop=1.0, cache_path=cache_path,
                       subset_id=f"test-ray-{VAL_SIZE}", executor=executor, progress=progress)


@pytest.fixture(scope="module")
def local_run(task, tmp_path_factory):
    return run_search(task, tmp_path_factory.mktemp("local") / "cache.jsonl")


def same_answer(a, b) -> None:
    assert a.best == b.best and a.best_eval == b.best_eval and a.best_loss == b.best_loss
    assert [(h.config, h.evaluation) for h in a.history] == [(h.config, h.evaluation) for h in b.history]
    assert a.evaluations == b.evaluations


def cache_counts(path: Path) -> Counter:
    """How often each config appears in a cache file."""
    return Counter(json.dumps(json.loads(line)["config"], sort_keys=True) for line in path.read_text().splitlines())


class KillOnce:
    """Scores a plan, but the first call in any process SIGKILLs that process (a marker file,
    created exclusively, says it happened): a worker dying mid-evaluation."""

    def __init__(self, evaluate, marker: Path):
        self.evaluate, self.marker = evaluate, str(marker)

    def __call__(self, plan):
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return self.evaluate(plan)
        os.kill(os.getpid(), signal.SIGKILL)


class StopAfter:
    """Scores a plan; raises KeyboardInterrupt after `n` calls (a local search killed by hand)."""

    def __init__(self, evaluate, n: int):
        self.evaluate, self.left = evaluate, n

    def __call__(self, plan):
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return self.evaluate(plan)


def ray_executor(messages: list):
    from mixq.ray import RayExecutor

    return RayExecutor(workers=2, log=messages.append)


@needs_ray
def test_ray_and_local_executors_pick_the_same_configuration(task, local_run, ray_cluster, tmp_path):
    messages = []
    result = run_search(task, tmp_path / "cache.jsonl", ray_executor(messages), progress=True)
    same_answer(result, local_run)
    assert len(result.trajectory) > 2                       # the greedy moved: a real search
    # the work ran on the two workers: the reference, then every config the greedy handed out
    assert any(m.startswith("ray: 2 workers (1 thread each) on 1 node") for m in messages), messages
    assert f"ray: {result.evaluations} evaluations on 2 workers" in messages[-1], messages


@needs_ray
def test_a_worker_killed_mid_search_is_retried_and_nothing_is_lost(task, local_run, ray_cluster, tmp_path):
    marker, cache = tmp_path / "killed", tmp_path / "cache.jsonl"
    messages = []
    result = run_search(task, cache, ray_executor(messages), evaluate=KillOnce(task["evaluate"], marker))
    assert marker.exists()                                   # a worker really died
    same_answer(result, local_run)
    counts = cache_counts(cache)
    assert set(counts.values()) == {1}                       # every evaluation stored once
    assert len(counts) == result.evaluations
    died = [m for m in messages if "died while evaluating" in m]
    assert len(died) == 1 and "Ray restarts it" in died[0] and "attempt 2 of 4" in died[0], messages


@needs_ray
def test_the_cache_resumes_across_executors(task, local_run, ray_cluster, tmp_path):
    cache = tmp_path / "cache.jsonl"
    with pytest.raises(KeyboardInterrupt):                   # a local search stopped after 60 evaluations
        run_search(task, cache, evaluate=StopAfter(task["evaluate"], 60))
    assert len(cache.read_text().splitlines()) == 60
    messages = []
    on_ray = run_search(task, cache, ray_executor(messages), progress=True)
    same_answer(on_ray, local_run)
    assert f"ray: {on_ray.evaluations - 60} evaluations on 2 workers" in messages[-1], messages
    counts = cache_counts(cache)
    assert set(counts.values()) == {1} and len(counts) == on_ray.evaluations
    # ... and back: a local run on the finished cache evaluates nothing
    same_answer(run_search(task, cache, evaluate=StopAfter(task["evaluate"], 0)), local_run)


@needs_ray
def test_map_batches_over_an_image_folder_equals_plan_run(task, ray_cluster, tmp_path):
    from PIL import Image

    from mixq import data
    from mixq.ray import map_batches, unit_scaled

    images, _ = data.fashion_mnist("test-subset")
    images = images[:20]
    folder = tmp_path / "images"
    folder.mkdir()
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f"{i:03d}.png")
    plan_path = tmp_path / "r20.mixq"
    mixq.compile(task["model"], task["x"], "w8a8", calibration=task["calibration"], progress=False).save(plan_path)
    plan = mixq.load_plan(plan_path)
    expected = plan.run(unit_scaled(images))

    rows = map_batches(plan_path, folder, batch_size=8).take_all()  # one worker: Ray Data reads on the other CPU
    assert len(rows) == len(images)
    for row in rows:
        i = int(Path(row["path"]).stem)
        assert np.array_equal(row["logits"], expected[i]), i
        assert "image" not in row

    # a Dataset of preprocessed arrays, under another column name
    x = data.preprocess(images)
    ds = ray.data.from_items([{"x": x[i], "id": i} for i in range(len(x))])
    rows = map_batches(plan_path, ds, column="x", output_column="y", workers=1).take_all()
    got = np.stack([r["y"] for r in sorted(rows, key=lambda r: r["id"])])
    assert np.array_equal(got, plan.run(x))


@needs_ray
def test_an_unpicklable_evaluate_or_too_many_workers_are_refused_before_any_worker_starts(task, ray_cluster):
    from mixq.ray import RayExecutor

    lock = threading.Lock()
    with pytest.raises(TypeError, match="must be picklable"):
        run_search(task, None, ray_executor([]), evaluate=lambda plan: lock.locked() or 0.0)
    with pytest.raises(ValueError, match="3 Ray workers x 1 threads need 3 CPUs; the cluster has 2"):
        run_search(task, None, RayExecutor(workers=3))


@needs_ray
def test_bad_input_to_the_ray_pieces_fails_clearly(tmp_path):
    from mixq.ray import RayExecutor, map_batches

    with pytest.raises(ValueError, match="not a Ray address"):
        RayExecutor(address="head-node")
    with pytest.raises(ValueError, match="workers"):
        RayExecutor(workers=0)
    with pytest.raises(FileNotFoundError, match="plan file .* not found"):
        map_batches(tmp_path / "missing.mixq", tmp_path)


def test_a_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ImportError, match=r'pip install "mixq\[ray\]"'):
        mixq.search(None, None, None, lambda plan: 0.0, executor="ray")
    from mixq.ray import map_batches

    with pytest.raises(ImportError, match=r"map_batches needs Ray"):
        map_batches("plan.mixq", "images")


def test_an_unknown_executor_is_refused():
    with pytest.raises(ValueError, match="executor must be one of"):
        mixq.search(None, None, None, lambda plan: 0.0, executor="dask")


@needs_ray
def test_cli_search_executor_options_fail_clearly():
    from mixq.cli import main

    for argv, reason in ((["search", "--address", "127.0.0.1:6379"], "need --executor ray"),
                         (["search", "--executor", "ray", "--address", "nope"], "not a Ray address"),
                         (["search", "--executor", "ray", "--address", "127.0.0.1:1"], "cannot reach")):
        with pytest.raises(SystemExit, match=reason):
            main(argv)
