"""mixq: fast mixed-precision quantized inference on CPUs.

Importing mixq selects the best kernel path for this CPU (or the one ``MIXQ_ISA`` names) and
fails with a ValueError if ``MIXQ_ISA`` names a path this CPU cannot run.
"""

from .kernels import (
    PackedWeight,
    available_isas,
    cpu_info,
    get_num_threads,
    kernel_list,
    last_kernel,
    matmul,
    measure_bandwidth,
    measure_peak,
    pack_weights,
    set_isa,
    set_num_threads,
)

from .runtime import Plan, PlanFileError, load_plan

__version__ = "0.1.0"

cpu_info()  # validates MIXQ_ISA now rather than at the first matmul

__all__ = [
    "Plan",
    "PlanFileError",
    "compile",
    "load_plan",
    "PackedWeight",
    "available_isas",
    "cpu_info",
    "get_num_threads",
    "kernel_list",
    "last_kernel",
    "matmul",
    "measure_bandwidth",
    "measure_peak",
    "pack_weights",
    "set_isa",
    "set_num_threads",
]


def compile(model, example_input, config=None, calibration=None, **kw):
    """PyTorch model -> quantized inference Plan (see mixq.runtime.compile.compile)."""
    from .runtime.compile import compile as _compile

    return _compile(model, example_input, config, calibration, **kw)
