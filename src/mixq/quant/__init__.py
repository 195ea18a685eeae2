"""Reference quantization primitives and calibration observers (pure numpy).

``primitives``: qrange, choose_qparams, quantize / dequantize / fake_quant (float32 steps
identical to the native core, round-half-to-even), quantize_weight / fake_quant_weight (the
exact semantics of ``mixq.pack_weights``).
``observers``: MinMaxObserver, PercentileObserver, MSEObserver, make_observer.
"""

from .observers import (
    OBSERVERS,
    MinMaxObserver,
    MSEObserver,
    Observer,
    PercentileObserver,
    make_observer,
)
from .primitives import (
    QDTYPES,
    choose_qparams,
    dequantize,
    fake_quant,
    fake_quant_weight,
    qrange,
    quantize,
    quantize_weight,
)

__all__ = [
    "QDTYPES",
    "qrange",
    "choose_qparams",
    "quantize",
    "dequantize",
    "fake_quant",
    "quantize_weight",
    "fake_quant_weight",
    "Observer",
    "MinMaxObserver",
    "PercentileObserver",
    "MSEObserver",
    "OBSERVERS",
    "make_observer",
]
