"""Weights of a plan spec, quantized and packed for the core: what a plan file stores.

Stored arrays per layer `<name>`:
- GEMM convs / linears: `<name>.weight.g<i>` uint8 = PackedWeight.to_bytes() of group i;
- int8 depthwise: `<name>.weight.codes` int8 [KH, KW, C] and `<name>.weight.scale` float32 [C];
- fp32 depthwise: `<name>.weight` float32 [KH, KW, C];
- `<name>.bias` float32 when the layer has one.
"""
from __future__ import annotations

import numpy as np

from ..kernels import PackedWeight, pack_weights
from ..quant import quantize_weight
from ..quant.config import parse_precision


def pack_gemm_weight(w2d: np.ndarray, precision: str) -> PackedWeight:
    p = parse_precision(precision)
    bits = p.weight_bits
    if bits in (2, 4):
        return pack_weights(w2d, bits=bits, group_size=p.group_for(w2d.shape[1]), symmetric=False)
    return pack_weights(w2d, bits=bits)


def depthwise_int8(w_khkwc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel symmetric int8 codes [KH, KW, C] and scales [C] (mixq.pack_weights semantics)."""
    kh, kw, c = w_khkwc.shape
    codes, scale, _ = quantize_weight(w_khkwc.reshape(kh * kw, c).T, bits=8)
    return np.ascontiguousarray(codes.T.reshape(kh, kw, c)), np.asarray(scale, dtype=np.float32)


def pack_op_weights(op: dict, w: np.ndarray) -> dict[str, np.ndarray]:
    """The stored arrays of one conv/depthwise op's weight (see the module doc)."""
    key = op["weight"]
    if op["kind"] == "conv":
        return {f"{key}.g{g}": np.frombuffer(pack_gemm_weight(w[g], op["precision"]).to_bytes(), dtype=np.uint8)
                for g in range(w.shape[0])}
    if op["precision"] == "w8a8":
        codes, scale = depthwise_int8(w)
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
