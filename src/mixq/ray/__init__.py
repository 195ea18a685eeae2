"""mixq on a Ray cluster (an optional extra: ``pip install "mixq[ray]"``).

- :class:`RayExecutor`: the precision search's evaluations as tasks on a pool of actors,
  ``mixq.search(..., executor="ray")`` or ``executor=RayExecutor(address=..., workers=...)``;
- :func:`map_batches`: batch inference of a plan file over a Ray Dataset (or a folder of images).

Nothing else in mixq imports Ray, and importing this package does not either: Ray is imported
when one of these is used, with an error naming the extra when it is not installed.
"""
from .batch import PlanPredictor, map_batches, unit_scaled
from .cluster import check_address
from .executor import RayEvaluate, RayExecutor
from .require import require_ray

__all__ = ["RayExecutor", "RayEvaluate", "map_batches", "PlanPredictor", "unit_scaled", "check_address",
           "require_ray"]
