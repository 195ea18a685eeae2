"""mixq.matmul: the validated GEMM call. The core only ever sees contiguous arrays of the
dtype it expects; every argument error is a clear TypeError or ValueError here."""
from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from .. import _core
from .packed_weight import PackedWeight, check_finite

__all__ = ["matmul"]


def _clamp_bounds(clamp) -> tuple[float, float]:
    if clamp is None:
        return -np.inf, np.inf
    if clamp == "relu":
        return 0.0, np.inf
    if clamp == "relu6":
        return 0.0, 6.0
    if isinstance(clamp, tuple) and len(clamp) == 3 and clamp[0] == "clamp":
        clamp = clamp[1:]
    if isinstance(clamp, tuple) and len(clamp) == 2:
        lo, hi = (float(v) for v in clamp)
        if np.isnan(lo) or np.isnan(hi) or lo > hi:
            raise ValueError(f"clamp bounds must satisfy lo <= hi, got {clamp}")
        return lo, hi
    raise ValueError(f"clamp must be None, 'relu', 'relu6' or ('clamp', lo, hi), got {clamp!r}")


def _scalar(value, name: str, kind):
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if kind is float and isinstance(value, Real) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, Integral) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"{name} must be a {kind.__name__} scalar, got {value!r}")


_OUT_DTYPES = {np.dtype(np.float32): "float32", np.dtype(np.int32): "int32", np.dtype(np.uint8): "uint8",
               np.dtype(np.int8): "int8"}
_QRANGE = {"uint8": (0, 255), "int8": (-128, 127)}


def matmul(x, packed: PackedWeight, bias=None, *, clamp=None, out_dtype=None, x_scale=None,
           x_zero_point=None, out_scale=None, out_zero_point=None, act: str = "int8") -> np.ndarray:
    """``clamp(x @ W.T + bias)`` on the packed weight W [N, K]; x is [..., K].

    - float32 x, int8/int4/int2 W: activations quantized per row to uint8 inside the core
      (W8A8 / W4A8 / W2A8 dynamic); float32 out.
    - uint8/int8 x with ``x_scale`` and ``x_zero_point`` (static activations), integer W: out
      ``float32`` (default), ``int32`` (raw zero-point-corrected accumulators; no bias or
      clamp), or ``uint8``/``int8`` requantized to ``out_scale``/``out_zero_point``.
    - float32 x, fp32 or bf16 W: float32 out.
    - float32 x, int4/int2 W, ``act="fp32"``: weight-only (W4A32 / W2A32): codes dequantized
      in registers, fp32 multiply; for activations that do not tolerate int8.
    - float32 x, int4/int2 W, ``act="bf16"``: weight-only with x rounded to bfloat16 (W4A16 /
      W2A16): exact weights, fp32 sums (vdpbf16ps where the CPU has AVX512-BF16).
    ``act`` names the precision of the activations (x) inside the kernel; ``clamp`` the fused
    nonlinearity: None, "relu", "relu6", (lo, hi) or ("clamp", lo, hi), applied in the epilogue.
    float32 outputs of L2 size and more are written with non-temporal stores (they bypass the
    cache: no read of the fresh array's lines before they are written).
    """
    if act not in ("int8", "fp32", "bf16"):
        raise ValueError(f"act must be 'int8' (quantize activations), 'fp32' or 'bf16' (weight-only), got {act!r}")
    if not isinstance(packed, PackedWeight):
        raise TypeError(f"packed must be a PackedWeight from mixq.pack_weights(), got {type(packed).__name__}")
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy array, got {type(x).__name__}")
    n, k = packed.shape
    if x.ndim == 0 or x.shape[-1] != k:
        raise ValueError(f"x must have shape [..., {k}] to match the weight {packed.shape}, got {x.shape}")
    lead = x.shape[:-1]
    x2 = np.ascontiguousarray(x.reshape(-1, k))
    lo, hi = _clamp_bounds(clamp)
    b = None
    if bias is not None:
        b = np.asarray(bias)
        if b.shape != (n,):
            raise ValueError(f"bias must have shape ({n},), got {b.shape}")
        if not np.issubdtype(b.dtype, np.floating):
            raise TypeError(f"bias must be float, got {b.dtype}")
        b = np.ascontiguousarray(b, dtype=np.float32)
        check_finite(b, "bias")

    if x.dtype == np.float32:
        if x_scale is not None or x_zero_point is not None:
            raise ValueError("x_scale/x_zero_point are for uint8/int8 x; float32 x is quantized dynamically")
        if out_dtype is not None and np.dtype(out_dtype) != np.float32:
            raise ValueError("float32 x gives float32 output")
        weight_only = act != "int8"
        if weight_only and packed.bits not in (2, 4):
            raise ValueError(f"act={act!r} (weight-only) needs int4 or int2 weights")
        if packed.bits not in (2, 4, 8) or weight_only:
            check_finite(x2, "x")  # the quantizing paths check inside the core
        out = _core.matmul_float_input(packed._core, x2, b, lo, hi, act)
    elif x.dtype in (np.uint8, np.int8):
        if act != "int8":
            raise ValueError(f"act={act!r} applies to float32 x")
        if packed.bits not in (2, 4, 8):
            raise TypeError(f"{x.dtype} x needs integer weights (bits 8, 4 or 2), the weight has bits={packed.bits}")
        if x_scale is None or x_zero_point is None:
            raise ValueError("quantized x needs x_scale and x_zero_point")
        xs = _scalar(x_scale, "x_scale", float)
        if not (np.isfinite(xs) and xs > 0):
            raise ValueError(f"x_scale must be finite and > 0, got {xs}")
        xz = _scalar(x_zero_point, "x_zero_point", int)
        qmin, qmax = _QRANGE[str(x.dtype)]
        if not qmin <= xz <= qmax:
            raise ValueError(f"x_zero_point {xz} is outside the {x.dtype} range [{qmin}, {qmax}]")
        od = _OUT_DTYPES.get(np.dtype(out_dtype if out_dtype is not None else np.float32))
        if od is None:
            raise ValueError(f"out_dtype must be float32, int32, uint8 or int8, got {out_dtype!r}")
        os_, oz = 1.0, 0
        if od == "int32" and (b is not None or clamp is not None):
            raise ValueError("int32 output is the raw accumulator: no bias or clamp")
        if od == "int32" and packed.bits != 8:
            raise ValueError("low-bit weights accumulate in float per group: int32 output needs bits=8")
        if od in _QRANGE:
            if out_scale is None or out_zero_point is None:
                raise ValueError(f"{od} output needs out_scale and out_zero_point")
            os_ = _scalar(out_scale, "out_scale", float)
            if not (np.isfinite(os_) and os_ > 0):
                raise ValueError(f"out_scale must be finite and > 0, got {os_}")
            oz = _scalar(out_zero_point, "out_zero_point", int)
            if not _QRANGE[od][0] <= oz <= _QRANGE[od][1]:
                raise ValueError(f"out_zero_point {oz} is outside the {od} range {_QRANGE[od]}")
        elif out_scale is not None or out_zero_point is not None:
            raise ValueError("out_scale/out_zero_point apply to uint8/int8 output only")
        out = _core.matmul_s8(packed._core, x2, xs, xz, od, b, lo, hi, os_, oz)
    else:
        raise TypeError(f"x must be float32, uint8 or int8, got {x.dtype}")
    return out.reshape(*lead, n)
