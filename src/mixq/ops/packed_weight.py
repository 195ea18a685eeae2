"""PackedWeight: weights in the layout the micro-kernels read, its file format, and the
validated calls that pack given codes (quantizing float weights is ``mixq.quant``'s job).
"""

from __future__ import annotations

import struct
import zlib
import numpy as np

from .. import _core

__all__ = ["FORMATS", "PackedWeight", "check_finite", "pack_float", "pack_int8_codes", "pack_low_bit_codes"]

# Packed formats of the core (packed_weight.h) and their names.
FORMATS = {1: "s8_x32c4", 2: "f32_x32", 3: "bf16_x32c2", 4: "u4_x32c4", 5: "u2_x32c4"}
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
        return FORMATS[self._core.format]

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

    @staticmethod
    def header_shape(blob) -> tuple[int, int, int]:
        """(format code, N, K) from a serialized PackedWeight's header, without reading the rest;
        ValueError if the bytes are shorter than a header."""
        blob = memoryview(blob).cast("B")
        if len(blob) < _HEADER.size:
            raise ValueError(f"PackedWeight bytes truncated: {len(blob)} bytes, header alone is {_HEADER.size}")
        fields = _HEADER.unpack_from(blob)
        return fields[2], fields[7], fields[8]

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
        if fmt not in FORMATS or nr != _PANEL_N or kr != _KR[fmt] or (group != 0) != low_bit:
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




def check_finite(arr: np.ndarray, name: str) -> None:
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf")


def _per_channel(value, n: int, dtype, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim == 0 or arr.shape == (1,):
        arr = np.full(n, arr.reshape(()))
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a scalar or have shape ({n},), got {arr.shape}")
    return np.ascontiguousarray(arr, dtype=dtype)


def pack_float(w: np.ndarray, bits: int) -> PackedWeight:
    """fp32 (bits=32) or bf16 (bits=16) weights [N, K], finite float32."""
    return PackedWeight(_core.pack_f32(w) if bits == 32 else _core.pack_bf16(w))


def pack_int8_codes(q: np.ndarray, scale, zero_point=None) -> PackedWeight:
    """int8 codes [N, K], scale (scalar or [N], > 0), optional zero point (int8 range)."""
    if q.dtype != np.int8:
        raise TypeError(f"bits=8 weights must be int8 codes or float, got {q.dtype}")
    n = q.shape[0]
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
    return PackedWeight(_core.pack_s8(np.ascontiguousarray(q), s, zp))


def pack_low_bit_codes(codes: np.ndarray, bits: int, group: int, scale, zero_point=None) -> PackedWeight:
    """uint8 codes [N, K] < 2^bits in groups of `group` along K, scale [N, n_groups] (> 0; stored
    as bfloat16), zero-point codes [N, n_groups] (default 2^(bits-1))."""
    n, k = codes.shape
    n_groups = -(-k // group)
    if codes.dtype != np.uint8:
        raise TypeError(f"bits={bits} weights must be float or uint8 codes, got {codes.dtype}")
    if scale is None:
        raise ValueError(f"{bits}-bit codes need scale [N, n_groups] (and optional zero_point)")
    if codes.max(initial=0) >= (1 << bits):
        raise ValueError(f"{bits}-bit codes must be < {1 << bits}")
    s = np.asarray(scale, dtype=np.float32)
    z = np.full((n, n_groups), 1 << (bits - 1)) if zero_point is None else np.asarray(zero_point)
    if s.shape != (n, n_groups) or z.shape != (n, n_groups):
        raise ValueError(f"scale and zero_point must have shape ({n}, {n_groups}) for group size {group}")
    if not (np.isfinite(s).all() and (s > 0).all()):
        raise ValueError("scale must be finite and > 0")
    if z.min() < 0 or z.max() >= (1 << bits):
        raise ValueError(f"zero_point codes must lie in [0, {(1 << bits) - 1}]")
    return PackedWeight(_core.pack_lowbit(np.ascontiguousarray(codes, dtype=np.uint8), bits, group,
                                          np.ascontiguousarray(s, dtype=np.float32),
                                          np.ascontiguousarray(z, dtype=np.uint8)))
