"""Connecting to Ray: this process's Ray, a cluster at an address, or a new local one."""
from __future__ import annotations

import os
import re
import socket

from .require import require_ray

# "auto" (a cluster started on this machine by `ray start --head`), HOST:PORT (the head's GCS,
# usually 6379) or ray://HOST:PORT (Ray Client, usually 10001).
_ADDRESS = re.compile(r"^(auto|(ray://)?[A-Za-z0-9_.\-]+:\d{1,5}|(ray://)?\[[0-9A-Fa-f:.]+\]:\d{1,5})$")

ADDRESS_HELP = ("'auto' (a cluster started on this machine by `ray start --head`), 'HOST:6379' (the head "
                "node's address, as `ray start --head` prints it) or 'ray://HOST:10001' (Ray Client)")


def check_address(address: str | None) -> str | None:
    """The address unchanged; ValueError when it cannot be a Ray address."""
    if address is None:
        return None
    if not isinstance(address, str) or not _ADDRESS.match(address.strip()):
        raise ValueError(f"{address!r} is not a Ray address: give {ADDRESS_HELP}")
    return address.strip()


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """ConnectionError at once when nothing listens at the address ("auto" is not checked):
    ray.init itself retries for minutes before it gives up."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise _unreachable(address, e) from e


def _unreachable(address: str | None, error: Exception) -> ConnectionError:
    return ConnectionError(f"cannot reach a Ray cluster at {address or '$RAY_ADDRESS'!r}: {error}. Start one "
                           f"(`ray start --head`) or give {ADDRESS_HELP}")


def connect(address: str | None, init_kwargs: dict | None = None) -> bool:
    """Make sure this process is connected to Ray; True when this call started a new local Ray
    (the caller shuts it down when done). A Ray this process already joined (ray.init) is used as
    it is, whatever the address; else address None means $RAY_ADDRESS, else a new local Ray."""
    ray = require_ray("running on Ray")
    if ray.is_initialized():
        return False
    kwargs = dict(include_dashboard=False)
    kwargs.update(init_kwargs or {})
    if address is not None:
        check_reachable(address)
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except (ConnectionError, TimeoutError) as e:
        raise _unreachable(address, e) from e
    return address is None and not os.environ.get("RAY_ADDRESS")  # else it joined that cluster
