"""Typed, validated calls into the native core: packed weights, matmul, machine facts."""
from .matmul import matmul
from .packed_weight import PackedWeight
from .system import (available_isas, cpu_info, get_num_threads, kernel_list, last_kernel, measure_bandwidth,
                     measure_peak, set_isa, set_num_threads)

__all__ = ["PackedWeight", "matmul", "available_isas", "cpu_info", "get_num_threads", "kernel_list", "last_kernel",
           "measure_bandwidth", "measure_peak", "set_isa", "set_num_threads"]
