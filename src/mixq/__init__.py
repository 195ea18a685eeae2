"""mixq: fast mixed-precision quantized inference on CPUs.

Importing mixq selects the best kernel path for this CPU (or the one ``MIXQ_ISA`` names) and
fails with a ValueError if ``MIXQ_ISA`` names a path this CPU cannot run.
"""

import os

# Idle OpenMP threads of torch (or numpy's BLAS) that spin-wait take the cores from mixq's own
# threads in the same process: measured, plans ran 1.5-2x slower after any multi-threaded torch
# call, for good. Passive waiting (a default only, and only if mixq is imported before torch)
# leaves torch's own speed unchanged within noise.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .ops import (  # noqa: E402
    PackedWeight,
    available_isas,
    cpu_info,
    get_num_threads,
    kernel_list,
    last_kernel,
    matmul,
    measure_bandwidth,
    measure_peak,
    set_isa,
    set_num_threads,
)
from .quant import PRECISIONS, QuantConfig, pack_weights  # noqa: E402

from .runtime import (  # noqa: E402
    DecoderPlan, EncoderPlan, Plan, PlanFileError, Sampling, compile_decoder, compile_encoder, load_plan)

__version__ = "0.1.0"

cpu_info()  # validates MIXQ_ISA now rather than at the first matmul

__all__ = [
    "PRECISIONS",
    "QuantConfig",
    "DecoderPlan",
    "EncoderPlan",
    "Plan",
    "PlanFileError",
    "Sampling",
    "compile",
    "compile_decoder",
    "compile_encoder",
    "search",
    "search_encoder",
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


def compile(model, example_input=None, config=None, calibration=None, **kw):
    """PyTorch model, ONNX file or torch.export program -> quantized inference Plan
    (see mixq.runtime.cnn.compile.compile)."""
    from .runtime.cnn.compile import compile as _compile

    return _compile(model, example_input, config, calibration, **kw)


def search(model, example_input, calibration, evaluate, **kw):
    """Per-layer precision search of a PyTorch CNN (see mixq.planner.model_search.search)."""
    from .planner.model_search import search as _search

    return _search(model, example_input, calibration, evaluate, **kw)


def search_encoder(model, batches, reference=None, **kw):
    """Per-layer precision search of a BERT-style encoder (see mixq.planner.text_study.search_encoder)."""
    from .planner.text_study import search_encoder as _search_encoder

    return _search_encoder(model, batches, reference, **kw)
