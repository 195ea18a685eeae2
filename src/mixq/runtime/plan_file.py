"""The plan file: one file, versioned header, checksum; numpy only.

Layout: header `<8sIQQI>` (magic b"MIXQPLAN", format version, JSON bytes, data bytes, CRC32 of
JSON + data), then the JSON (spec, meta, and an index of the arrays), then the arrays, each at
a 64-byte aligned offset of the data section.
"""
from __future__ import annotations

import json
import os
import struct
import zlib

import numpy as np

MAGIC = b"MIXQPLAN"
VERSION = 1
_HEADER = struct.Struct("<8sIQQI")
_ALIGN = 64
_DTYPES = {"float32", "int8", "uint8", "int32"}


class PlanFileError(ValueError):
    """A plan file that is not one, is corrupt or truncated, or comes from a newer mixq."""


def write_plan(path, spec: dict, stored: dict[str, np.ndarray], meta: dict) -> None:
    index, chunks, offset = [], [], 0
    for name, a in stored.items():
        a = np.ascontiguousarray(a)
        if a.dtype.name not in _DTYPES:
            raise TypeError(f"cannot store array {name!r} of dtype {a.dtype}")
        pad = (-offset) % _ALIGN
        chunks += [b"\0" * pad, a.tobytes()]
        offset += pad
        index.append(dict(name=name, dtype=a.dtype.name, shape=list(a.shape), offset=offset, nbytes=a.nbytes))
        offset += a.nbytes
    body = json.dumps(dict(spec=spec, meta=meta, arrays=index)).encode()
    data = b"".join(chunks)
    crc = zlib.crc32(data, zlib.crc32(body))
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:  # write then rename: a crash never leaves half a plan under the name
        f.write(_HEADER.pack(MAGIC, VERSION, len(body), len(data), crc))
        f.write(body)
        f.write(data)
    os.replace(tmp, path)


def read_plan(path) -> tuple[dict, dict[str, np.ndarray], dict]:
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < _HEADER.size or blob[:8] != MAGIC:
        raise PlanFileError(f"{path}: not a mixq plan file (bad magic)")
    magic, version, n_json, n_data, crc = _HEADER.unpack_from(blob)
    if version != VERSION:
        newer = "newer than" if version > VERSION else "not one"
        raise PlanFileError(f"{path}: plan format version {version} is {newer} this mixq reads ({VERSION})")
    if len(blob) != _HEADER.size + n_json + n_data:
        raise PlanFileError(f"{path}: truncated or padded: {len(blob)} bytes, header says "
                            f"{_HEADER.size + n_json + n_data}")
    body = blob[_HEADER.size:_HEADER.size + n_json]
    data = memoryview(blob)[_HEADER.size + n_json:]
    if zlib.crc32(data, zlib.crc32(body)) != crc:
        raise PlanFileError(f"{path}: checksum mismatch (the file is corrupt)")
    try:
        doc = json.loads(body)
        if not isinstance(doc, dict) or not isinstance(doc.get("spec"), dict) or not isinstance(doc["arrays"], list):
            raise ValueError("the document needs a 'spec' object and an 'arrays' list")
        stored = {}
        for e in doc["arrays"]:
            if (e["dtype"] not in _DTYPES or e["offset"] < 0 or e["offset"] % _ALIGN or e["nbytes"] < 0
                    or e["offset"] + e["nbytes"] > n_data):
                raise ValueError(f"bad array entry {e['name']!r}")
            a = np.frombuffer(data, dtype=e["dtype"], count=e["nbytes"] // np.dtype(e["dtype"]).itemsize,
                              offset=e["offset"])
            stored[e["name"]] = a.reshape(e["shape"]).copy()
        meta = doc.get("meta", {})
        return doc["spec"], stored, meta if isinstance(meta, dict) else {}
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError) as e:
        raise PlanFileError(f"{path}: malformed plan index: {e}") from e
