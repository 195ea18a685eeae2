"""Reference quantization primitives (pure numpy).

These are the definitions the native core is checked against, so every step is spelled out
in float32 the way the core does it:

- **Rounding** is round-half-to-even (``np.rint``), the same as the core's ``std::nearbyint``
  under the default rounding mode: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0.
- **Quantize**: ``q = clamp(rint(x * (1 / scale)) + zero_point, qmin, qmax)``, with ``x``,
  ``1 / scale``, the product and the sum all float32 -- bit for bit what the core's
  requantizing epilogue and its dynamic activation quantizer compute.
- **Dequantize**: ``(q - zero_point) * scale`` in float32 (integer difference, then one
  float32 multiply).
- **choose_qparams**: the range is always extended to include 0 (so 0 is exactly
  representable); asymmetric ``scale = (hi - lo) / (qmax - qmin)`` and
  ``zero_point = clamp(rint(-lo * (1 / scale)) + qmin)``; symmetric ``scale = amax / qmax``
  with zero point 0 for signed types (for unsigned types: ``amax / (2^(b-1) - 1)`` with zero
  point ``2^(b-1)``, the convention of the low-bit weight packer). For uint8 this is exactly
  the core's per-row dynamic activation quantization.

Weights: :func:`quantize_weight` / :func:`fake_quant_weight` reuse the weight codecs of
:mod:`mixq.quant.weights` (the ones :func:`mixq.pack_weights` runs), so they describe the packed
weight exactly.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np

from .weights import codec

__all__ = [
    "QDTYPES",
    "qrange",
    "choose_qparams",
    "quantize",
    "dequantize",
    "fake_quant",
    "quantize_weight",
    "fake_quant_weight",
]

# name -> (qmin, qmax, numpy storage dtype of the codes)
_QDTYPES = {
    "uint8": (0, 255, np.uint8),
    "int8": (-128, 127, np.int8),
    "uint4": (0, 15, np.uint8),
    "int4": (-8, 7, np.int8),
    "uint2": (0, 3, np.uint8),
    "int2": (-2, 1, np.int8),
}
QDTYPES = tuple(_QDTYPES)

_F32_TINY = np.float32(np.finfo(np.float32).tiny)  # smallest normal float32: 1/tiny is finite


def _qdtype(dtype) -> tuple[int, int, type]:
    key = dtype
    if not isinstance(dtype, str):
        try:
            key = np.dtype(dtype).name  # np.uint8 / np.int8 spelled as numpy types
        except TypeError:
            key = None
    if key not in _QDTYPES:
        raise ValueError(f"dtype must be one of {', '.join(QDTYPES)}, got {dtype!r}")
    return _QDTYPES[key]


def qrange(dtype) -> tuple[int, int]:
    """(qmin, qmax) of a quantized type: "uint8", "int8", "uint4", "int4", "uint2", "int2".
    ``np.uint8`` / ``np.int8`` are accepted for the 8-bit types."""
    qmin, qmax, _ = _qdtype(dtype)
    return qmin, qmax


# --------------------------------------------------------------------------------------------
# qparams


def choose_qparams(lo, hi, dtype="uint8", symmetric: bool = False):
    """Scale and zero point that map the range [lo, hi] onto ``dtype``.

    ``lo`` and ``hi`` are scalars or arrays of the same (broadcastable) shape, e.g. per-channel
    minima and maxima. The range is first extended to include 0, so 0.0 quantizes exactly to
    the zero point. All arithmetic is float32:

    - asymmetric: ``scale = (hi - lo) / (qmax - qmin)``,
      ``zero_point = clamp(rint(-lo * (1/scale)) + qmin, qmin, qmax)``;
    - symmetric, signed dtype: ``scale = max(|lo|, |hi|) / qmax``, ``zero_point = 0``;
    - symmetric, unsigned dtype: ``scale = max(|lo|, |hi|) / (2^(b-1) - 1)`` (at least 1),
      ``zero_point = 2^(b-1)``.

    A degenerate range (lo == hi == 0) gives scale 1.0; a positive scale below the smallest
    normal float32 is raised to it (so 1/scale stays finite). Returns ``(np.float32, int)`` for
    scalar inputs, ``(float32 array, int32 array)`` otherwise. Raises ValueError for NaN/Inf,
    values beyond the float32 range, or lo > hi.
    """
    qmin, qmax, _ = _qdtype(dtype)
    lo_in, hi_in = np.asarray(lo), np.asarray(hi)
    scalar = lo_in.ndim == 0 and hi_in.ndim == 0
    for name, v in (("lo", lo_in), ("hi", hi_in)):
        if not (np.issubdtype(v.dtype, np.number) or v.dtype == np.bool_) or np.iscomplexobj(v):
            raise TypeError(f"{name} must be real numbers, got dtype {v.dtype}")
        if not np.isfinite(v).all():
            raise ValueError(f"choose_qparams: {name} contains NaN or Inf")
    with np.errstate(over="ignore"):
        lo32, hi32 = np.broadcast_arrays(lo_in.astype(np.float32), hi_in.astype(np.float32))
    if not (np.isfinite(lo32).all() and np.isfinite(hi32).all()):
        raise ValueError("choose_qparams: lo/hi exceed the float32 range")
    if (lo32 > hi32).any():
        raise ValueError("choose_qparams: lo must be <= hi")
    zero = np.float32(0)
    lo32 = np.minimum(lo32, zero)
    hi32 = np.maximum(hi32, zero)

    with np.errstate(over="ignore"):
        if symmetric:
            amax = np.maximum(-lo32, hi32)
            if qmin < 0:
                div, zp = qmax, np.zeros(amax.shape, np.int64)
            else:
                half = (qmax + 1) // 2
                div, zp = max(half - 1, 1), np.full(amax.shape, half, np.int64)
            scale = (amax / np.float32(div)).astype(np.float32)
        else:
            levels = np.float32(qmax - qmin)
            scale = ((hi32 - lo32) / levels).astype(np.float32)
            if not np.isfinite(scale).all():  # hi - lo overflowed float32
                scale = np.where(np.isfinite(scale), scale, hi32 / levels - lo32 / levels).astype(np.float32)
    scale = np.where(scale > 0, np.maximum(scale, _F32_TINY), np.float32(1)).astype(np.float32)
    if not symmetric:
        inv = (np.float32(1) / scale).astype(np.float32)
        zp = np.clip(np.rint(-lo32 * inv) + np.float32(qmin), qmin, qmax).astype(np.int64)
    if scalar:
        return np.float32(scale.reshape(())), int(zp.reshape(()))
    return scale, zp.astype(np.int32)


# --------------------------------------------------------------------------------------------
# quantize / dequantize


def _params(scale, zero_point, shape: tuple, axis, qmin=None, qmax=None):
    """Validated float32 scale and int64 zero point, shaped to broadcast against ``shape``."""
    s = np.asarray(scale)
    if not np.issubdtype(s.dtype, np.number) or np.iscomplexobj(s):
        raise TypeError(f"scale must be real numbers, got dtype {s.dtype}")
    s = s.astype(np.float32)
    if not (np.isfinite(s).all() and (s > 0).all()):
        raise ValueError("scale must be finite and > 0")
    z = np.asarray(zero_point)
    if np.issubdtype(z.dtype, np.integer):
        z = z.astype(np.int64)
    elif np.issubdtype(z.dtype, np.floating) and np.isfinite(z).all() and (z == np.rint(z)).all():
        z = z.astype(np.int64)
    else:
        raise TypeError(f"zero_point must be integers, got {zero_point!r}")
    if qmin is not None and z.size and (z.min() < qmin or z.max() > qmax):
        raise ValueError(f"zero_point must lie in [{qmin}, {qmax}]")
    ndim = len(shape)
    if axis is None:
        try:
            out = np.broadcast_shapes(s.shape, z.shape, shape)
        except ValueError:
            out = None
        if out != tuple(shape):
            raise ValueError(f"scale {s.shape} and zero_point {z.shape} do not broadcast to the input shape "
                             f"{tuple(shape)}; pass axis= for per-channel parameters")
        return s, z
    if isinstance(axis, bool) or not isinstance(axis, Integral):
        raise TypeError(f"axis must be an int or None, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for an input of {ndim} dimensions")
    axis = int(axis) % ndim
    c = shape[axis]
    bshape = [1] * ndim
    bshape[axis] = c
    out = []
    for name, v in (("scale", s), ("zero_point", z)):
        if v.ndim == 0:
            out.append(v)
        elif v.shape == (c,):
            out.append(v.reshape(bshape))
        else:
            raise ValueError(f"{name} must be a scalar or have shape ({c},) for axis={axis}, got {v.shape}")
    return out[0], out[1]


def quantize(x, scale, zero_point, dtype="uint8", axis=None) -> np.ndarray:
    """``clamp(rint(x * (1/scale)) + zero_point, qmin, qmax)``, all in float32.

    ``x`` is converted to float32 first. ``scale`` / ``zero_point`` are scalars, 1-D per-channel
    arrays along ``axis``, or (``axis=None``) arrays that broadcast to ``x``'s shape. Returns
    codes as uint8 (unsigned types) or int8 (signed types; int4/int2 codes in int8). +-Inf
    saturates; NaN raises ValueError.
    """
    qmin, qmax, storage = _qdtype(dtype)
    with np.errstate(over="ignore"):
        x = np.asarray(x, dtype=np.float32)
    s, z = _params(scale, zero_point, x.shape, axis, qmin, qmax)
    if np.isnan(x).any():
        raise ValueError("quantize: x contains NaN")
    inv = (np.float32(1) / s).astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        v = np.rint(x * inv) + z.astype(np.float32)
    return np.clip(v, qmin, qmax).astype(storage)


def dequantize(q, scale, zero_point, axis=None) -> np.ndarray:
    """``(q - zero_point) * scale`` as float32 (integer difference, one float32 multiply)."""
    q = np.asarray(q)
    if not np.issubdtype(q.dtype, np.integer):
        raise TypeError(f"q must be integer codes, got dtype {q.dtype}")
    s, z = _params(scale, zero_point, q.shape, axis)
    return ((q.astype(np.int64) - z).astype(np.float32) * s).astype(np.float32)


def fake_quant(x, scale, zero_point, dtype="uint8", axis=None) -> np.ndarray:
    """``dequantize(quantize(x, ...), ...)``: x as the quantized tensor represents it (float32)."""
    q = quantize(x, scale, zero_point, dtype, axis)
    return dequantize(q, scale, zero_point, axis)


# --------------------------------------------------------------------------------------------
# weights: the exact semantics of mixq.pack_weights


def _weight_2d(w, axis) -> tuple[np.ndarray, tuple]:
    if not isinstance(w, np.ndarray):
        raise TypeError(f"w must be a numpy array, got {type(w).__name__}")
    if not np.issubdtype(w.dtype, np.floating):
        raise TypeError(f"w must be a float array, got {w.dtype}")
    if w.ndim < 2:
        raise ValueError(f"w must have at least 2 dimensions ([N, K] or [Cout, ...]), got shape {w.shape}")
    if w.size == 0:
        raise ValueError(f"w must not be empty, got shape {w.shape}")
    if isinstance(axis, bool) or not isinstance(axis, Integral) or not -w.ndim <= axis < w.ndim:
        raise ValueError(f"axis must be an int in [{-w.ndim}, {w.ndim}), got {axis!r}")
    moved = np.moveaxis(w, int(axis), 0)
    w2 = np.ascontiguousarray(moved.reshape(moved.shape[0], -1), dtype=np.float32)
    if not np.isfinite(w2).all():
        raise ValueError("w contains NaN or Inf (or values beyond the float32 range)")
    return w2, moved.shape


def _quantize_weight_2d(w2, bits, group_size, symmetric, clip_search):
    try:
        c = codec(bits)
    except ValueError:
        raise ValueError(f"bits must be 8, 4 or 2, got {bits!r}") from None
    return c.quantize(w2, group_size, symmetric, clip_search)


def quantize_weight(w, bits: int = 8, group_size: int | None = None, symmetric: bool = True,
                    axis: int = 0, clip_search: bool = False):
    """Quantize a float weight exactly as :func:`mixq.pack_weights` does.

    ``w`` is [N, K] or a conv weight [Cout, ...]; ``axis`` is the output-channel axis, moved to
    the front, and the rest is flattened to K. Returns ``(codes, scale, zero_point)``:

    - ``bits=8``: codes int8 [N, K]; scale float32 [N] (per output channel); zero_point None
      when symmetric (codes in [-127, 127]), else int32 [N] in [-128, 127].
    - ``bits=4`` / ``bits=2``: codes uint8 [N, K] in [0, 2^bits); scale float32 [N, n_groups]
      (values rounded to bfloat16, as stored); zero_point uint8 [N, n_groups] (2^(bits-1) when
      symmetric). ``group_size`` 32/64/128 along K, or None for one group per output channel
      (K padded to a multiple of 16, like pack_weights). ``clip_search`` as in pack_weights.

    ``mixq.pack_weights(codes, bits, scale, zero_point, group_size=group_size)`` rebuilds the
    same packed weight.
    """
    w2, _ = _weight_2d(w, axis)
    q, s, z, _group = _quantize_weight_2d(w2, bits, group_size, symmetric, clip_search)
    return q, s, z


def fake_quant_weight(w, bits: int = 8, group_size: int | None = None, symmetric: bool = True,
                      axis: int = 0, clip_search: bool = False) -> np.ndarray:
    """The weight as the packed weight represents it: ``(code - zero_point) * scale`` in float32,
    in ``w``'s shape. Same arguments as :func:`quantize_weight`."""
    w2, moved_shape = _weight_2d(w, axis)
    q, s, z, group = _quantize_weight_2d(w2, bits, group_size, symmetric, clip_search)
    deq = codec(bits).dequantize(q, s, z, group, w2.shape[1])
    deq = deq.astype(np.float32).reshape(moved_shape)
    return np.ascontiguousarray(np.moveaxis(deq, 0, int(axis)))
