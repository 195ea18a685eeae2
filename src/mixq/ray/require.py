"""Ray is an optional extra: the one place mixq imports it, with an error that names the extra."""
from __future__ import annotations

INSTALL_HINT = 'pip install "mixq[ray]" (from a checkout: pip install ".[ray]")'


def require_ray(what: str):
    """The ray module; ImportError naming the extra when it is not installed."""
    try:
        import ray
    except ImportError as e:
        raise ImportError(f"{what} needs Ray, an optional extra of mixq: {INSTALL_HINT}") from e
    return ray


def require_ray_data(what: str):
    """ray.data (Ray's datasets, in the same extra: it needs pandas and pyarrow)."""
    require_ray(what)
    try:
        import ray.data
    except ImportError as e:
        raise ImportError(f"{what} needs Ray Data ({e}): {INSTALL_HINT}") from e
    return ray.data
