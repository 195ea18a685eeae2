"""The core's machine-facing calls: CPU features, threads, ISA choice, kernel list, roofs."""
from __future__ import annotations

from numbers import Integral

from .. import _core

__all__ = ["cpu_info", "set_num_threads", "get_num_threads", "set_isa", "available_isas", "last_kernel",
           "kernel_list", "measure_peak", "measure_bandwidth"]


def cpu_info() -> dict:
    """Detected CPU features, the ISA level and kernels in use, cache sizes, thread count."""
    return _core.cpu_info()


def set_num_threads(n: int) -> None:
    """Threads the core may use (default: physical cores)."""
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 1:
        raise ValueError(f"set_num_threads needs an integer >= 1, got {n!r}")
    _core.set_num_threads(int(n))


def get_num_threads() -> int:
    return _core.get_num_threads()


def set_isa(name: str) -> None:
    """Force a kernel path ('ref'; x86 'avx2', 'avx512', 'avx512vnni'; Arm 'neon', 'dotprod', 'i8mm',
    'sve'; RISC-V 'rvv'); ValueError if the CPU or build lacks it.
    Not to be called while another thread is running a matmul."""
    _core.set_isa(str(name))


def available_isas() -> list[str]:
    """ISA levels this CPU and build can run, lowest first."""
    return list(_core.available_isas())


def last_kernel() -> str:
    """Name of the micro-kernel the most recent matmul ran."""
    return _core.last_kernel()


def kernel_list() -> list[dict]:
    """Every micro-kernel compiled into this build (the one list in kernels.inc)."""
    return list(_core.kernel_list())


def measure_peak(kind: str, seconds: float = 0.3) -> float:
    """Measured compute roof at the current thread count, in GOPS: 'int8', 'int8_narrow' (the w7a8
    kernels' vpmaddubsw loop, CPUs without VNNI), 'fp32' or 'bf16'."""
    return _core.measure_peak(str(kind), float(seconds))


def measure_bandwidth(seconds: float = 0.5, nbytes: int | None = None) -> float:
    """Measured read bandwidth at the current thread count, in GB/s: every thread streams its
    slice of a buffer; the best of several passes. By default the buffer is 8x the L3 (at least
    256 MiB), i.e. DRAM; `nbytes` that fit a cache level measure that level."""
    if nbytes is not None and (not isinstance(nbytes, int) or nbytes < 4096):
        raise ValueError(f"nbytes must be an int >= 4096, got {nbytes!r}")
    return _core.measure_bandwidth(float(seconds), int(nbytes or 0))
