"""Reference quantization primitives and calibration observers (pure numpy).

``primitives``: qrange, choose_qparams, quantize / dequantize / fake_quant (float32 steps
identical to the native core, round-half-to-even), quantize_weight / fake_quant_weight (the
exact semantics of ``mixq.pack_weights``).
``observers``: MinMaxObserver, PercentileObserver, MSEObserver, make_observer.
"""

from . import observers, primitives
from .observers import *  # noqa: F401,F403  (names: observers.__all__)
from .primitives import *  # noqa: F401,F403  (names: primitives.__all__)

__all__ = primitives.__all__ + observers.__all__
