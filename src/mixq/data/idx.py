"""Reader for the IDX file format (MNIST / Fashion-MNIST), numpy only.

Layout: 2 zero bytes, a type code byte, a dimension-count byte, one big-endian
uint32 per dimension, then the row-major payload.  Files may be gzip-compressed
(detected by content, not by name).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["IDXFormatError", "read_idx", "write_idx"]

# type code -> numpy dtype (IDX payloads are big-endian)
_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {np.dtype(v).newbyteorder("=") if v.itemsize > 1 else v: k for k, v in _DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


class IDXFormatError(ValueError):
    """An IDX file is malformed: bad magic, truncated, or inconsistent sizes.

    ``path`` holds the offending file.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: invalid IDX file: {reason}")


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:  # truncated / corrupt gzip stream
            raise IDXFormatError(path, f"corrupt gzip stream ({e})") from None
    return raw


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX file (raw or gzip) into a native-endian numpy array."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise IDXFormatError(path, f"file too short for a header ({len(data)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _DTYPES or ndim == 0:
        raise IDXFormatError(path, f"bad magic number 0x{data[:4].hex()} (expected 0x0000 + type code + ndim)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXFormatError(path, f"truncated header: {ndim} dimensions need {header} bytes, file has {len(data)}")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got < expected:
        raise IDXFormatError(path, f"truncated payload: header says shape {shape} ({expected} bytes), found {got} bytes")
    if got > expected:
        raise IDXFormatError(path, f"{got - expected} unexpected trailing bytes after payload of shape {shape}")
    arr = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file (gzip if ``compress`` or the name ends in .gz)."""
    path = Path(path)
    arr = np.asarray(array)
    key = arr.dtype.newbyteorder("=") if arr.dtype.itemsize > 1 else arr.dtype
    if key not in _CODES:
        raise TypeError(f"dtype {arr.dtype} has no IDX type code")
    code = _CODES[key]
    payload = struct.pack(">HBB", 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    payload += np.ascontiguousarray(arr, dtype=_DTYPES[code]).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
    return path
