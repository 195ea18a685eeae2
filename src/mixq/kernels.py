"""Typed, validated calls into the native core: weight packing and mixed-precision GEMM.

Every public function checks its arguments here and raises a clear ``TypeError`` or
``ValueError``; the core only ever sees contiguous arrays of the dtype it expects.
"""

from __future__ import annotations

import struct
import zlib
from numbers import Integral, Real

import numpy as np

from . import _core

__all__ = [
    "PackedWeight",
    "pack_weights",
    "matmul",
    "cpu_info",
    "set_num_threads",
    "get_num_threads",
    "set_isa",
    "available_isas",
    "last_kernel",
    "kernel_list",
    "measure_peak",
    "measure_bandwidth",
]

# Packed formats of the core (packed_weight.h) and their names.
_FORMATS = {1: "s8_x32c4", 2: "f32_x32", 3: "bf16_x32c2", 4: "u4_x32c4", 5: "u2_x32c4"}
_KR = {1: 4, 2: 1, 3: 2, 4: 4, 5: 4}
_LOW_BIT = {4, 5}
_PANEL_N = 32

# Serialized PackedWeight: header, then data, scales, zero points. The CRC covers everything
# after the header, and the header's own fields are cross-checked against the payload sizes.
_MAGIC = b"MIXQPW\x00\x00"
_VERSION = 1
_HEADER = struct.Struct("<8sHHHHHHqqqqqI")  # magic, version, format, bits, group, nr, kr, N, K,
#                                             n_data, n_scale, n_zp, crc32


class PackedWeight:
    """Weights packed once, offline, into the layout the micro-kernels read.

    Attributes: ``shape`` (N, K) = (out_features, in_features), ``bits`` (2, 4, 8, 16 for bf16,
    32), ``format``, ``group_size`` (low-bit: K values sharing a scale; None otherwise),
    ``nbytes`` (packed codes incl. padding + scales + zero points + precomputed sums),
    ``scale`` and ``zero_point`` (int8: per output channel; low-bit: [N, n_groups]).
    """

    __slots__ = ("_core",)

    def __init__(self, core_weight: _core.PackedWeight):
        if not isinstance(core_weight, _core.PackedWeight):
            raise TypeError("PackedWeight is created by mixq.pack_weights() or PackedWeight.from_bytes()")
        self._core = core_weight

    @property
    def shape(self) -> tuple[int, int]:
        return (self._core.N, self._core.K)

    @property
    def bits(self) -> int:
        return self._core.bits

    @property
    def format(self) -> str:
        return _FORMATS[self._core.format]

    @property
    def nbytes(self) -> int:
        return self._core.nbytes

    @property
    def group_size(self) -> int | None:
        return self._core.group_size if self._core.format in _LOW_BIT else None

    def _group_table(self, values, dtype) -> np.ndarray:
        """[n_groups][N_pad] core layout -> [N, n_groups]."""
        n = self.shape[0]
        return np.asarray(values, dtype=dtype).reshape(-1, -(-n // _PANEL_N) * _PANEL_N)[:, :n].T.copy()

    @property
    def scale(self) -> np.ndarray | None:
        if self._core.format in _LOW_BIT:
            return self._group_table(self._core.group_scale(), np.float32)
        s = self._core.scale()
        return np.asarray(s, dtype=np.float32) if s else None

    @property
    def zero_point(self) -> np.ndarray | None:
        if self._core.format in _LOW_BIT:
            return self._group_table(self._core.group_zp(), np.int32)
        z = self._core.zero_point()
        return np.asarray(z, dtype=np.int32) if z else None

    def __repr__(self) -> str:
        n, k = self.shape
        group = f", group_size={self.group_size}" if self.group_size else ""
        return (f"PackedWeight(shape=({n}, {k}), bits={self.bits}{group}, format={self.format!r}, "
                f"nbytes={self.nbytes})")

    def to_bytes(self) -> bytes:
        """Serialize with a versioned, checksummed header (see from_bytes)."""
        fmt = self._core.format
        data = self._core.data().tobytes()
        if fmt in _LOW_BIT:  # the bf16 scales live in data; zero-point codes u8 [n_groups][N_pad]
            scale = b""
            zp = np.asarray(self._core.group_zp(), dtype=np.uint8).tobytes()
            n_zp, group = len(zp), self._core.group_size
        else:
            scale = np.asarray(self._core.scale(), dtype="<f4").tobytes()
            zp = np.asarray(self._core.zero_point(), dtype="<i4").tobytes()
            n_zp, group = len(zp) // 4, 0
        payload = data + scale + zp
        n, k = self.shape
        header = _HEADER.pack(_MAGIC, _VERSION, fmt, self.bits, group, _PANEL_N, _KR[fmt], n, k,
                              len(data), len(scale) // 4, n_zp, zlib.crc32(payload))
        return header + payload

    @classmethod
    def from_bytes(cls, blob: bytes | bytearray | memoryview) -> "PackedWeight":
        """Load a serialized PackedWeight; raises ValueError if it is corrupt or truncated."""
        blob = bytes(blob)
        if len(blob) < _HEADER.size:
            raise ValueError(f"PackedWeight bytes truncated: {len(blob)} bytes, header alone is {_HEADER.size}")
        (magic, version, fmt, bits, group, nr, kr, n, k, n_data, n_scale, n_zp, crc) = _HEADER.unpack_from(blob)
        if magic != _MAGIC:
            raise ValueError("not a mixq PackedWeight (bad magic)")
        if version != _VERSION:
            raise ValueError(f"PackedWeight version {version} is not supported (this mixq reads version {_VERSION})")
        low_bit = fmt in _LOW_BIT
        if fmt not in _FORMATS or nr != _PANEL_N or kr != _KR[fmt] or (group != 0) != low_bit:
            raise ValueError(f"PackedWeight header has an unknown layout (format={fmt}, nr={nr}, kr={kr})")
        if min(n, k, n_data, n_scale, n_zp) < 0 or n == 0 or k == 0:
            raise ValueError("PackedWeight header has invalid sizes")
        zp_size = 1 if low_bit else 4
        expected = _HEADER.size + n_data + 4 * n_scale + zp_size * n_zp
        if len(blob) != expected:
            raise ValueError(f"PackedWeight bytes truncated or padded: {len(blob)} bytes, header says {expected}")
        payload = blob[_HEADER.size:]
        if zlib.crc32(payload) != crc:
            raise ValueError("PackedWeight checksum mismatch: the data is corrupt")
        data = np.ascontiguousarray(np.frombuffer(payload, dtype=np.uint8, count=n_data))
        scale = np.frombuffer(payload, dtype="<f4", count=n_scale, offset=n_data).astype(np.float32)
        if low_bit:
            zp = np.frombuffer(payload, dtype=np.uint8, count=n_zp, offset=n_data + 4 * n_scale).copy()
            if n_scale:
                raise ValueError("PackedWeight header has invalid sizes")
            core = _core.packed_lowbit_from_parts(fmt, n, k, group, data, zp)
        else:
            zp = np.frombuffer(payload, dtype="<i4", count=n_zp, offset=n_data + 4 * n_scale).astype(np.int32)
            core = _core.packed_from_parts(fmt, n, k, data, scale, zp)
        if core.bits != bits:
            raise ValueError("PackedWeight header bits do not match its format")
        return cls(core)


def _as_2d_weight(w, name="w") -> np.ndarray:
    if not isinstance(w, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(w).__name__}")
    if w.ndim != 2:
        raise ValueError(f"{name} must be 2-D [out_features, in_features], got shape {w.shape}")
    if w.shape[0] == 0 or w.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {w.shape}")
    return w


def _per_channel(value, n: int, dtype, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = np.full(n, arr)
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a scalar or have shape ({n},), got {arr.shape}")
    return np.ascontiguousarray(arr, dtype=dtype)


def _check_finite(arr: np.ndarray, name: str) -> None:
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf")


def _quantize_weight_int8(w: np.ndarray, per_channel: bool, symmetric: bool):
    """Round-to-nearest int8 weights: symmetric [-127, 127], or asymmetric [-128, 127] + zero point."""
    w = w.astype(np.float32)
    axis = 1 if per_channel else None
    if symmetric:
        amax = np.abs(w).max(axis=axis, keepdims=per_channel)
        scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
        zp = None
    else:
        lo = np.minimum(w.min(axis=axis, keepdims=per_channel), 0.0)
        hi = np.maximum(w.max(axis=axis, keepdims=per_channel), 0.0)
        scale = np.where(hi > lo, (hi - lo) / 255.0, 1.0).astype(np.float32)
        zp = np.clip(np.rint(-128.0 - lo / scale), -128, 127).astype(np.int32)
        q = np.clip(np.rint(w / scale) + zp, -128, 127).astype(np.int8)
        zp = zp.reshape(-1)
    return q, np.asarray(scale, dtype=np.float32).reshape(-1), zp


_GROUP_SIZES = (32, 64, 128)
_CLIP_RATIOS = np.linspace(1.0, 0.5, 11, dtype=np.float32)


def _round_bf16(x: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (how low-bit scales are stored)."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    b = (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000
    return b.astype(np.uint32).view(np.float32)


def _quantize_groups(wg: np.ndarray, bits: int, symmetric: bool, clip_ratio):
    """Round-to-nearest codes for groups wg [N, G, g]. Returns codes (uint8), scale [N, G] (bf16
    values: codes are rounded against the scale as stored) and zero-point codes [N, G].
    Symmetric: zero point 2^(bits-1), levels [-2^(bits-1), 2^(bits-1)-1]."""
    qmax = (1 << bits) - 1
    if symmetric:
        amax = np.abs(wg).max(axis=2) * clip_ratio
        scale = amax / max((1 << (bits - 1)) - 1, 1)
        zp = np.full(scale.shape, 1 << (bits - 1), np.float32)
    else:
        lo = np.minimum(wg.min(axis=2), 0.0) * clip_ratio
        hi = np.maximum(wg.max(axis=2), 0.0) * clip_ratio
        scale = (hi - lo) / qmax
        zp = np.clip(np.rint(-lo / np.where(scale > 0, scale, 1.0)), 0, qmax)
    scale = _round_bf16(np.where(scale > 0, scale, 1.0))
    codes = np.clip(np.rint(wg / scale[:, :, None]) + zp[:, :, None], 0, qmax)
    return codes.astype(np.uint8), scale, zp.astype(np.uint8)


def _quantize_low_bit(w: np.ndarray, bits: int, group: int, symmetric: bool, clip_search: bool):
    """Group-wise quantization of float w [N, K] along K (the last group may be partial)."""
    n, k = w.shape
    n_groups = -(-k // group)
    wg = np.zeros((n, n_groups * group), np.float32)
    wg[:, :k] = w
    wg = wg.reshape(n, n_groups, group)
    codes, scale, zp = _quantize_groups(wg, bits, symmetric, np.float32(1.0))
    if clip_search:  # per group, the clipping ratio with the least squared error
        best = ((scale[:, :, None] * (codes.astype(np.float32) - zp[:, :, None]) - wg) ** 2).sum(axis=2)
        for ratio in _CLIP_RATIOS[1:]:
            c, s, z = _quantize_groups(wg, bits, symmetric, ratio)
            err = ((s[:, :, None] * (c.astype(np.float32) - z[:, :, None]) - wg) ** 2).sum(axis=2)
            better = err < best
            best = np.where(better, err, best)
            codes = np.where(better[:, :, None], c, codes)
            scale, zp = np.where(better, s, scale), np.where(better, z, zp)
    return codes.reshape(n, -1)[:, :k], scale, zp


def _pack_low_bit(w, bits, group_size, scale, zero_point, symmetric, clip_search) -> PackedWeight:
    n, k = w.shape
    if group_size is None:  # one group per output channel
        group = -(-k // 16) * 16
    elif group_size in _GROUP_SIZES:
        group = group_size
    else:
        raise ValueError(f"group_size must be one of {_GROUP_SIZES} or None (per channel), got {group_size!r}")
    n_groups = -(-k // group)
    if np.issubdtype(w.dtype, np.floating):
        if scale is not None or zero_point is not None:
            raise ValueError("scale/zero_point are computed for float weights; pass uint8 codes to give them")
        _check_finite(w, "w")
        codes, s, z = _quantize_low_bit(w.astype(np.float32), bits, group, symmetric, clip_search)
    elif w.dtype == np.uint8:
        if scale is None:
            raise ValueError(f"{bits}-bit codes need scale [N, n_groups] (and optional zero_point)")
        if w.max(initial=0) >= (1 << bits):
            raise ValueError(f"{bits}-bit codes must be < {1 << bits}")
        s = np.asarray(scale, dtype=np.float32)
        z = (np.full((n, n_groups), 1 << (bits - 1)) if zero_point is None else np.asarray(zero_point))
        if s.shape != (n, n_groups) or z.shape != (n, n_groups):
            raise ValueError(f"scale and zero_point must have shape ({n}, {n_groups}) for group size {group}")
        if not (np.isfinite(s).all() and (s > 0).all()):
            raise ValueError("scale must be finite and > 0")
        if z.min() < 0 or z.max() >= (1 << bits):
            raise ValueError(f"zero_point codes must lie in [0, {(1 << bits) - 1}]")
        codes, z = w, z.astype(np.uint8)
    else:
        raise TypeError(f"bits={bits} weights must be float or uint8 codes, got {w.dtype}")
    return PackedWeight(_core.pack_lowbit(np.ascontiguousarray(codes, dtype=np.uint8), bits, group,
                                          np.ascontiguousarray(s, dtype=np.float32),
                                          np.ascontiguousarray(z, dtype=np.uint8)))


def pack_weights(w, bits: int = 8, scale=None, zero_point=None, *, per_channel: bool = True,
                 symmetric: bool = True, group_size: int | None = None,
                 clip_search: bool = False) -> PackedWeight:
    """Pack an [N, K] (out_features x in_features) weight for ``matmul``.

    - ``bits=8`` with an int8 ``w``: given codes; ``scale`` (scalar or [N]) is required,
      ``zero_point`` (scalar or [N], int8 range) optional.
    - ``bits=8`` with a float ``w``: quantized here, symmetric per output channel by default
      (``per_channel=False`` for one scale, ``symmetric=False`` for zero points).
    - ``bits=32``: fp32 weights for the fp32 kernel; ``bits=16``: bf16 weights (fp32 accumulate).
    - ``bits=4`` / ``bits=2``: group-wise along K (``group_size`` 32, 64, 128; None = one group
      per output channel), a bfloat16 scale per group and column, symmetric (zero point 2^(bits-1))
      by default or asymmetric; round-to-nearest, or with ``clip_search=True`` the clipping
      ratio per group that minimizes the squared error. uint8 codes (< 2^bits) with ``scale``
      and optional ``zero_point`` of shape [N, n_groups] are packed as given (scales rounded to
      bfloat16). A K that is not a
      multiple of the group size is handled: the last group is partial.
    """
    w = _as_2d_weight(w)
    n = w.shape[0]
    if bits in (2, 4):
        return _pack_low_bit(w, bits, group_size, scale, zero_point, symmetric, clip_search)
    if group_size is not None or clip_search:
        raise ValueError("group_size and clip_search apply to bits=4 and bits=2")
    if bits == 8:
        if w.dtype == np.int8:
            if scale is None:
                raise ValueError("int8 weights need a scale (scalar or one per output channel)")
            s = _per_channel(scale, n, np.float32, "scale")
            if not (np.isfinite(s).all() and (s > 0).all()):
                raise ValueError("scale must be finite and > 0")
            zp = None
            if zero_point is not None:
                zp = _per_channel(zero_point, n, np.int64, "zero_point")
                if zp.min() < -128 or zp.max() > 127:
                    raise ValueError("weight zero_point must lie in the int8 range [-128, 127]")
                zp = zp.astype(np.int32)
            q = np.ascontiguousarray(w)
        elif np.issubdtype(w.dtype, np.floating):
            if scale is not None or zero_point is not None:
                raise ValueError("scale/zero_point are computed for float weights; pass int8 codes to give them")
            _check_finite(w, "w")
            q, s, zp = _quantize_weight_int8(w, per_channel, symmetric)
        else:
            raise TypeError(f"bits=8 weights must be int8 codes or float, got {w.dtype}")
        return PackedWeight(_core.pack_s8(q, s, zp))
    if bits in (16, 32):
        if not np.issubdtype(w.dtype, np.floating):
            raise TypeError(f"bits={bits} weights must be float, got {w.dtype}")
        if scale is not None or zero_point is not None:
            raise ValueError(f"bits={bits} weights take no scale or zero_point")
        _check_finite(w, "w")
        wf = np.ascontiguousarray(w, dtype=np.float32)
        return PackedWeight(_core.pack_f32(wf) if bits == 32 else _core.pack_bf16(wf))
    raise ValueError(f"bits must be 2, 4, 8, 16 (bf16) or 32, got {bits!r}")


def _clamp_bounds(activation) -> tuple[float, float]:
    if activation is None:
        return -np.inf, np.inf
    if activation == "relu":
        return 0.0, np.inf
    if activation == "relu6":
        return 0.0, 6.0
    if isinstance(activation, tuple) and len(activation) == 3 and activation[0] == "clamp":
        activation = activation[1:]
    if isinstance(activation, tuple) and len(activation) == 2:
        lo, hi = (float(v) for v in activation)
        if np.isnan(lo) or np.isnan(hi) or lo > hi:
            raise ValueError(f"clamp bounds must satisfy lo <= hi, got {activation}")
        return lo, hi
    raise ValueError(f"activation must be None, 'relu', 'relu6' or ('clamp', lo, hi), got {activation!r}")


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


def matmul(x, packed: PackedWeight, bias=None, *, activation=None, out_dtype=None, x_scale=None,
           x_zero_point=None, out_scale=None, out_zero_point=None, act: str = "int8") -> np.ndarray:
    """``activation(x @ W.T + bias)`` on the packed weight W [N, K]; x is [..., K].

    - float32 x, int8/int4/int2 W: activations quantized per row to uint8 inside the core
      (W8A8 / W4A8 / W2A8 dynamic); float32 out.
    - uint8/int8 x with ``x_scale`` and ``x_zero_point`` (static activations), integer W: out
      ``float32`` (default), ``int32`` (raw zero-point-corrected accumulators; no bias or
      activation), or ``uint8``/``int8`` requantized to ``out_scale``/``out_zero_point``.
    - float32 x, fp32 or bf16 W: float32 out.
    - float32 x, int4/int2 W, ``act="fp32"``: weight-only (W4A32 / W2A32): codes dequantized
      in registers, fp32 multiply; for activations that do not tolerate int8.
    - float32 x, int4/int2 W, ``act="bf16"``: weight-only with x rounded to bfloat16 (W4A16 /
      W2A16): exact weights, fp32 sums (vdpbf16ps where the CPU has AVX512-BF16).
    ``activation``: None, "relu", "relu6" or ("clamp", lo, hi), fused in the epilogue.
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
    lo, hi = _clamp_bounds(activation)
    b = None
    if bias is not None:
        b = np.asarray(bias)
        if b.shape != (n,):
            raise ValueError(f"bias must have shape ({n},), got {b.shape}")
        if not np.issubdtype(b.dtype, np.floating):
            raise TypeError(f"bias must be float, got {b.dtype}")
        b = np.ascontiguousarray(b, dtype=np.float32)
        _check_finite(b, "bias")

    if x.dtype == np.float32:
        if x_scale is not None or x_zero_point is not None:
            raise ValueError("x_scale/x_zero_point are for uint8/int8 x; float32 x is quantized dynamically")
        if out_dtype is not None and np.dtype(out_dtype) != np.float32:
            raise ValueError("float32 x gives float32 output")
        weight_only = act != "int8"
        if weight_only and packed.bits not in (2, 4):
            raise ValueError(f"act={act!r} (weight-only) needs int4 or int2 weights")
        if packed.bits not in (2, 4, 8) or weight_only:
            _check_finite(x2, "x")  # the quantizing paths check inside the core
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
        if od == "int32" and (b is not None or activation is not None):
            raise ValueError("int32 output is the raw accumulator: no bias or activation")
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
    """Force a kernel path ('ref', 'avx2', 'avx512', 'avx512vnni'); ValueError if the CPU lacks it.
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
    """Measured compute roof at the current thread count, in GOPS: 'int8', 'fp32' or 'bf16'."""
    return _core.measure_peak(str(kind), float(seconds))


def measure_bandwidth(seconds: float = 0.5, nbytes: int | None = None) -> float:
    """Measured read bandwidth at the current thread count, in GB/s: every thread streams its
    slice of a buffer; the best of several passes. By default the buffer is 8x the L3 (at least
    256 MiB), i.e. DRAM; `nbytes` that fit a cache level measure that level."""
    if nbytes is not None and (not isinstance(nbytes, int) or nbytes < 4096):
        raise ValueError(f"nbytes must be an int >= 4096, got {nbytes!r}")
    return _core.measure_bandwidth(float(seconds), int(nbytes or 0))
