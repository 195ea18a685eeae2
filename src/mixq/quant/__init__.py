"""Quantization: the precision table, per-layer configs, weight quantizers, reference
primitives and calibration observers (pure numpy).

``precisions``: PRECISIONS (one entry per precision), LayerPrecision, parse_precision.
``config``: QuantConfig (default precision plus per-layer overrides).
``weights``: the weight codecs and ``pack_weights`` (float weights -> PackedWeight).
``primitives``: qrange, choose_qparams, quantize / dequantize / fake_quant (float32 steps
identical to the native core, round-half-to-even), quantize_weight / fake_quant_weight (the
exact semantics of ``mixq.pack_weights``).
``observers``: MinMaxObserver, PercentileObserver, MSEObserver, make_observer.
"""

from . import observers, primitives
from .config import QuantConfig
from .observers import *  # noqa: F401,F403  (names: observers.__all__)
from .precisions import PRECISIONS, LayerPrecision, parse_precision
from .primitives import *  # noqa: F401,F403  (names: primitives.__all__)
from .weights import pack_weights

__all__ = (primitives.__all__ + observers.__all__
           + ["QuantConfig", "PRECISIONS", "LayerPrecision", "parse_precision", "pack_weights"])
