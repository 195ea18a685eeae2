"""Weight quantizers: float weights -> the codes, scales and zero points the core packs.

One codec per stored weight width (``WEIGHT_CODECS``, keyed by bits); the precision table
(``precisions.py``) and ``pack_weights`` pick a codec by looking it up, never by switching on
bits. Codes round to nearest (half to even, ``np.rint``) in float32, as the core's requantizer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ops.packed_weight import PackedWeight, check_finite, pack_float, pack_int8_codes, pack_low_bit_codes

__all__ = ["GROUP_SIZES", "WEIGHT_CODECS", "NARROW_INT8", "round_bf16", "pack_weights", "check_group_size"]

# Group sizes the low-bit kernels take (a group is a whole number of 4-deep k steps per panel).
GROUP_SIZES = (32, 64, 128)
_CLIP_RATIOS = np.linspace(1.0, 0.5, 11, dtype=np.float32)


def round_bf16(x: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (ties to even), as float32."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    b = (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000
    return b.astype(np.uint32).view(np.float32)


def round_bf16_finite(x: np.ndarray) -> np.ndarray:
    """round_bf16 that leaves NaN and Inf as they are."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    return np.where(np.isfinite(x), round_bf16(x), x)


def check_group_size(group_size) -> None:
    if group_size is not None and (isinstance(group_size, bool) or group_size not in GROUP_SIZES):
        raise ValueError(f"group_size must be one of {GROUP_SIZES} or None (per channel), got {group_size!r}")


def stored_group(k: int, group_size: int | None) -> int:
    """The group the packer stores: group_size, or one (16-padded) group per output channel."""
    check_group_size(group_size)
    return -(-k // 16) * 16 if group_size is None else int(group_size)


def quantize_int8(w: np.ndarray, per_channel: bool = True, symmetric: bool = True, qmax: int = 127):
    """Round-to-nearest int8: symmetric [-qmax, qmax], or asymmetric [-128, 127] + zero point
    (qmax 127 only). Returns codes int8, scale float32 [N] (or [1]), zero point int32 or None."""
    w = w.astype(np.float32)
    axis = 1 if per_channel else None
    if symmetric:
        amax = np.abs(w).max(axis=axis, keepdims=per_channel)
        scale = np.where(amax > 0, amax / np.float32(qmax), 1.0).astype(np.float32)
        q = np.clip(np.rint(w / scale), -qmax, qmax).astype(np.int8)
        zp = None
    else:
        if qmax != 127:
            raise ValueError(f"asymmetric int8 weights use the full range; qmax={qmax} is symmetric only")
        lo = np.minimum(w.min(axis=axis, keepdims=per_channel), 0.0)
        hi = np.maximum(w.max(axis=axis, keepdims=per_channel), 0.0)
        scale = np.where(hi > lo, (hi - lo) / 255.0, 1.0).astype(np.float32)
        zp = np.clip(np.rint(-128.0 - lo / scale), -128, 127).astype(np.int32)
        q = np.clip(np.rint(w / scale) + zp, -128, 127).astype(np.int8)
        zp = zp.reshape(-1)
    return q, np.asarray(scale, dtype=np.float32).reshape(-1), zp


def _quantize_groups(wg: np.ndarray, bits: int, symmetric: bool, clip_ratio):
    """Codes for groups wg [N, G, g]: codes uint8, scale [N, G] (bf16 values: codes are rounded
    against the scale as stored), zero-point codes [N, G]. Symmetric: zero point 2^(bits-1)."""
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
    scale = round_bf16(np.where(scale > 0, scale, 1.0))
    codes = np.clip(np.rint(wg / scale[:, :, None]) + zp[:, :, None], 0, qmax)
    return codes.astype(np.uint8), scale, zp.astype(np.uint8)


def quantize_groups(w: np.ndarray, bits: int, group: int, symmetric: bool, clip_search: bool):
    """Group-wise codes of float w [N, K] along K (the last group may be partial). With
    clip_search, per group the clipping ratio with the least squared error."""
    n, k = w.shape
    n_groups = -(-k // group)
    wg = np.zeros((n, n_groups * group), np.float32)
    wg[:, :k] = w
    wg = wg.reshape(n, n_groups, group)
    codes, scale, zp = _quantize_groups(wg, bits, symmetric, np.float32(1.0))
    if clip_search:
        best = ((scale[:, :, None] * (codes.astype(np.float32) - zp[:, :, None]) - wg) ** 2).sum(axis=2)
        for ratio in _CLIP_RATIOS[1:]:
            c, s, z = _quantize_groups(wg, bits, symmetric, ratio)
            err = ((s[:, :, None] * (c.astype(np.float32) - z[:, :, None]) - wg) ** 2).sum(axis=2)
            better = err < best
            best = np.where(better, err, best)
            codes = np.where(better[:, :, None], c, codes)
            scale, zp = np.where(better, s, scale), np.where(better, z, zp)
    return np.ascontiguousarray(codes.reshape(n, -1)[:, :k]), scale, zp


@dataclass(frozen=True)
class Int8Codec:
    """8-bit weights: one scale (and optional zero point) per output channel. Symmetric codes lie in
    [-qmax, qmax]: 127 is the full range; 64 is the narrow range (|code| <= 64) on which CPUs without
    VNNI multiply with vpmaddubsw, exactly (the core checks every code when it packs)."""
    bits: int = 8
    grouped: bool = False
    qmax: int = 127

    def quantize(self, w2, group_size=None, symmetric=True, clip_search=False, per_channel=True):
        if group_size is not None or clip_search:
            raise ValueError("group_size and clip_search apply to bits=4 and bits=2")
        q, s, z = quantize_int8(w2, per_channel, bool(symmetric), self.qmax)
        return q, s, z, None

    def dequantize(self, q, s, z, group, k):
        zp = np.zeros(s.shape, np.int64) if z is None else z.astype(np.int64)
        return (q.astype(np.int64) - zp[:, None]).astype(np.float32) * s[:, None]

    def pack(self, q, s, z, group):
        return pack_int8_codes(q, s, z)


@dataclass(frozen=True)
class GroupCodec:
    """4- and 2-bit weights: unsigned codes, a bf16 scale and u8 zero point per group along K."""
    bits: int
    grouped: bool = True

    def quantize(self, w2, group_size=None, symmetric=True, clip_search=False, per_channel=True):
        group = stored_group(w2.shape[1], group_size)
        codes, s, z = quantize_groups(w2, self.bits, group, bool(symmetric), bool(clip_search))
        return codes, s, z, group

    def dequantize(self, q, s, z, group, k):
        s_full = np.repeat(s, group, axis=1)[:, :k]
        z_full = np.repeat(z.astype(np.int64), group, axis=1)[:, :k]
        return (q.astype(np.int64) - z_full).astype(np.float32) * s_full

    def pack(self, q, s, z, group):
        return pack_low_bit_codes(q, self.bits, group, s, z)


WEIGHT_CODECS = {8: Int8Codec(), 4: GroupCodec(4), 2: GroupCodec(2)}
NARROW_INT8 = Int8Codec(qmax=64)  # the w7a8 precision's weights


def codec(bits):
    c = WEIGHT_CODECS.get(bits) if isinstance(bits, int) and not isinstance(bits, bool) else None
    if c is None:
        raise ValueError(f"bits must be one of {sorted(WEIGHT_CODECS, reverse=True)}, got {bits!r}")
    return c


def _as_2d_weight(w) -> np.ndarray:
    if not isinstance(w, np.ndarray):
        raise TypeError(f"w must be a numpy array, got {type(w).__name__}")
    if w.ndim != 2:
        raise ValueError(f"w must be 2-D [out_features, in_features], got shape {w.shape}")
    if w.shape[0] == 0 or w.shape[1] == 0:
        raise ValueError(f"w must not be empty, got shape {w.shape}")
    return w


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
      bfloat16). A K that is not a multiple of the group size is handled: the last group is
      partial.
    """
    w = _as_2d_weight(w)
    if bits in (16, 32) and not isinstance(bits, bool):
        if group_size is not None or clip_search:
            raise ValueError("group_size and clip_search apply to bits=4 and bits=2")
        if not np.issubdtype(w.dtype, np.floating):
            raise TypeError(f"bits={bits} weights must be float, got {w.dtype}")
        if scale is not None or zero_point is not None:
            raise ValueError(f"bits={bits} weights take no scale or zero_point")
        check_finite(w, "w")
        return pack_float(np.ascontiguousarray(w, dtype=np.float32), bits)
    try:
        c = codec(bits)
    except ValueError:
        raise ValueError(f"bits must be 2, 4, 8, 16 (bf16) or 32, got {bits!r}") from None
    if not c.grouped and (group_size is not None or clip_search):
        raise ValueError("group_size and clip_search apply to bits=4 and bits=2")
    if np.issubdtype(w.dtype, np.floating):
        if scale is not None or zero_point is not None:
            raise ValueError(f"scale/zero_point are computed for float weights; pass {'uint8' if c.grouped else 'int8'} "
                             "codes to give them")
        check_finite(w, "w")
        q, s, z, group = c.quantize(w.astype(np.float32), group_size, symmetric, clip_search, per_channel)
        return c.pack(q, s, z, group)
    group = stored_group(w.shape[1], group_size) if c.grouped else None
    return c.pack(w, scale, zero_point, group)
