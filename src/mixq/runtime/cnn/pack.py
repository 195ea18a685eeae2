"""Weights of a plan spec, quantized and packed for the core: what a plan file stores.

Stored arrays per layer `<name>`:
- GEMM convs / linears: `<name>.weight.g<i>` uint8 = PackedWeight.to_bytes() of group i;
- int8 depthwise: `<name>.weight.codes` int8 [KH, KW, C] and `<name>.weight.scale` float32 [C];
- fp32 depthwise: `<name>.weight` float32 [KH, KW, C];
- `<name>.bias` float32 when the layer has one.
"""
from __future__ import annotations

import numpy as np

from ...quant import parse_precision


def depthwise_codes(w_khkwc: np.ndarray, precision: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel codes [KH, KW, C] and scales [C] of a quantized depthwise weight."""
    kh, kw, c = w_khkwc.shape
    codes, scale, _, _ = parse_precision(precision).quantize(w_khkwc.reshape(kh * kw, c).T)
    return np.ascontiguousarray(codes.T.reshape(kh, kw, c)), np.asarray(scale, dtype=np.float32)


def pack_op_weights(op: dict, w: np.ndarray) -> dict[str, np.ndarray]:
    """The stored arrays of one conv/depthwise op's weight (see the module doc)."""
    key = op["weight"]
    if op["kind"] == "conv":
        p = parse_precision(op["precision"])
        return {f"{key}.g{g}": np.frombuffer(p.pack(w[g]).to_bytes(), dtype=np.uint8) for g in range(w.shape[0])}
    if parse_precision(op["precision"]).entry.quantized_weights:
        codes, scale = depthwise_codes(w, op["precision"])
        return {f"{key}.codes": codes, f"{key}.scale": scale}
    return {key: w}


def pack_spec_weights(spec, cache: dict | None = None) -> dict[str, np.ndarray]:
    """Stored arrays of every op. cache: {(weight key, kind, precision): arrays}, reused across the
    configs of a search (a layer's packed weights do not depend on the other layers)."""
    stored: dict[str, np.ndarray] = {}
    for op in spec.ops:
        if op["kind"] not in ("conv", "depthwise"):
            continue
        ck = (op["weight"], op["kind"], op["precision"])
        if cache is not None and ck in cache:
            stored.update(cache[ck])
        else:
            arrays = pack_op_weights(op, spec.arrays[op["weight"]])
            if cache is not None:
                cache[ck] = arrays
            stored.update(arrays)
        if "bias" in op:
            stored[op["bias"]] = spec.arrays[op["bias"]]
    return stored
