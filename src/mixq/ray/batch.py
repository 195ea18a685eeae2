"""Batch inference of a plan on Ray: Ray Data's map_batches over a pool of actors, each holding
the plan built once.

The plan file is read and validated here, on the driver; its arrays go to the actors through the
object store (as many bytes as the file), so the workers need no shared file system and no torch.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from .require import require_ray, require_ray_data

__all__ = ["map_batches", "PlanPredictor", "unit_scaled"]


def unit_scaled(images: np.ndarray) -> np.ndarray:
    """uint8 images as Ray Data reads them ([N, H, W] grey or [N, H, W, C]) -> float32 NCHW in
    [0, 1], what ``mixq compile --calib FOLDER`` feeds a model; float NCHW passes unchanged."""
    x = np.asarray(images)
    if np.issubdtype(x.dtype, np.floating) and x.ndim == 4:
        return x.astype(np.float32, copy=False)
    if x.dtype != np.uint8 or x.ndim not in (3, 4):
        raise ValueError(f"expected uint8 images [N, H, W] or [N, H, W, C], or float NCHW; got {x.dtype} "
                         f"{x.shape} (give map_batches a preprocess function for other data)")
    if x.ndim == 3:
        x = x[..., None]
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)


class PlanPredictor:
    """A Ray Data actor: builds the plan once from its shipped parts, then scores batches.
    Each output batch holds the input's columns except the images, plus ``output_column``."""

    def __init__(self, parts, threads: int = 1, column: str = "image", output_column: str = "logits",
                 preprocess: Callable | None = None):
        import ray

        from .. import ops
        from ..runtime.cnn import Plan

        ops.set_num_threads(threads)
        if isinstance(parts, ray.ObjectRef):
            parts = ray.get(parts)
        self.plan = Plan(*parts)
        self.column, self.output_column = column, output_column
        self.preprocess = preprocess or unit_scaled

    def __call__(self, batch: dict) -> dict:
        out = {k: v for k, v in batch.items() if k != self.column}
        out[self.output_column] = self.plan.run(self.preprocess(batch[self.column]))
        return out


def _image_dataset(folder: Path, shape: tuple[int, int, int]):
    """A folder of image files as a Ray Dataset at the plan's input size, with their paths."""
    rd = require_ray_data("mixq.ray.map_batches")
    c, h, w = shape
    if c not in (1, 3):
        raise ValueError(f"the plan takes {c} channels; a folder of images gives 1 (grey) or 3 (RGB): "
                         "pass a Ray Dataset and a preprocess function instead")
    return rd.read_images(str(folder), size=(h, w), mode="L" if c == 1 else "RGB", include_paths=True)


def map_batches(plan_path, dataset, *, batch_size: int = 64, workers: int | None = None,
                threads_per_worker: int = 1, column: str = "image", output_column: str = "logits",
                preprocess: Callable | None = None):
    """Score ``dataset`` with the CNN plan in ``plan_path`` on Ray; returns a (lazy) Ray Dataset.

    dataset: a ``ray.data.Dataset`` whose ``column`` holds images (uint8 as ``read_images`` gives
        them, or float NCHW), or a folder of image files: read at the plan's input size, grey or
        RGB as its channels say, with each file's ``path``.
    preprocess: images -> float32 NCHW (must be picklable); default :func:`unit_scaled` (uint8 to
        [0, 1], no other normalization).
    workers: actors in the pool (default: the cluster's CPUs but one, which Ray Data's read tasks
        need, divided by threads_per_worker); each runs the plan on ``threads_per_worker`` threads.
    Each row of the result keeps the input's other columns and gains ``output_column`` (the plan's
    output, e.g. logits). Connects to Ray as ``ray.init()`` does ($RAY_ADDRESS, else a local Ray)
    unless this process already did.
    """
    ray = require_ray("mixq.ray.map_batches")
    rd = require_ray_data("mixq.ray.map_batches")
    from ..runtime import load_plan
    from ..runtime.cnn import Plan
    from .cluster import connect

    path = Path(plan_path)
    if not path.is_file():
        raise FileNotFoundError(f"plan file {plan_path} not found (write one with mixq compile ... -o FILE "
                                "or plan.save(FILE))")
    plan = load_plan(path)  # checked here: a bad file fails before any worker starts
    if not isinstance(plan, Plan):
        raise ValueError(f"{plan_path} holds a {type(plan).__name__}; map_batches scores images with a CNN plan")
    for name, value in (("batch_size", batch_size), ("threads_per_worker", threads_per_worker)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive int or None, got {workers!r}")
    connect(None)
    if isinstance(dataset, (str, Path)):
        folder = Path(dataset)
        if not folder.is_dir():
            raise FileNotFoundError(f"image folder {dataset} not found")
        dataset = _image_dataset(folder, plan.input_shape)
    elif not isinstance(dataset, rd.Dataset):
        raise TypeError(f"dataset must be a ray.data.Dataset or a folder of images, got {type(dataset).__name__}")
    # Ray Data reads the input with tasks that need a CPU too: a pool holding every CPU stalls it.
    cpus = int(ray.cluster_resources().get("CPU", 1))
    if workers is None:
        workers = max(1, (cpus - 1) // threads_per_worker)
    elif workers * threads_per_worker >= cpus:
        warnings.warn(f"map_batches: {workers} workers x {threads_per_worker} threads hold all {cpus} CPUs of the "
                      "cluster; Ray Data's read tasks need one too and the run may stall", RuntimeWarning,
                      stacklevel=2)
    parts = ray.put((plan.spec, plan.stored, plan.meta))
    return dataset.map_batches(
        PlanPredictor, batch_size=batch_size, batch_format="numpy", concurrency=workers,
        num_cpus=threads_per_worker,
        fn_constructor_kwargs=dict(parts=parts, threads=threads_per_worker, column=column,
                                   output_column=output_column, preprocess=preprocess))
