"""Lowering a Llama-style decoder: config -> per-linear precisions -> packed fused weights.

Q|K|V and gate|up are each one GEMM whose weight is the row-wise concatenation of the linears'
weights: per-channel and per-group quantization work row by row, so the fused weight quantizes
exactly as its parts would. The linears of one fused GEMM must therefore share a precision.
The token table, the RMSNorm weights and the rotary tables stay fp32; int8 activations are
quantized per token with dynamic scales inside the core.
Outlier channels (outliers.py), given per GEMM, are cut out of its int8 weight and stored as fp32
columns beside it.
"""
from __future__ import annotations

import numpy as np

from ...quant import QuantConfig, parse_precision
from .layout import EMBED, FINAL_NORM, FUSED, LM_HEAD, NORMS, layer_prefix, linear_names
from .outliers import split_weight


def pack_bytes(w: np.ndarray, precision: str) -> np.ndarray:
    packed = parse_precision(precision).pack(np.ascontiguousarray(w, dtype=np.float32))
    return np.frombuffer(packed.to_bytes(), dtype=np.uint8)


KV_CACHES = ("fp32", "int8")


def lower_decoder(cfg: dict, params: dict[str, np.ndarray], config, kv_cache: str = "fp32",
                  outliers: dict[str, np.ndarray] | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """(plan spec, stored arrays) of a decoder with model config `cfg` (LlamaConfig.to_dict()),
    float32 HF-named `params`, a precision `config` (see mixq.quant.config), the KV cache's
    type: "fp32", or "int8" (symmetric per token and KV head, keys after RoPE), and optional
    outlier channels {GEMM stored name (layout.gemms): sorted channel indices}."""
    if kv_cache not in KV_CACHES:
        raise ValueError(f"kv_cache must be one of {KV_CACHES}, got {kv_cache!r}")
    qc = QuantConfig.from_any(config)
    n_layers = cfg["num_layers"]
    names = linear_names(n_layers)
    qc.check_names(names)
    precision = {n: str(qc.precision_of(n)) for n in names}
    outliers = dict(outliers or {})
    stored = {f"{EMBED}.weight": params[f"{EMBED}.weight"], f"{FINAL_NORM}.weight": params[f"{FINAL_NORM}.weight"]}

    def add(gemm: str, parts: tuple[str, ...], w: np.ndarray):
        if len({precision[n] for n in parts}) != 1:
            raise ValueError(f"{', '.join(parts)} run as one GEMM and need one precision, got "
                             f"{[precision[n] for n in parts]}")
        cols = outliers.pop(gemm, None)
        if cols is not None and not parse_precision(precision[parts[0]]).int8_activations:
            raise ValueError(f"{gemm} runs at {precision[parts[0]]}: outlier channels need int8 activations")
        w, w_out = split_weight(w, cols)
        stored[f"{gemm}.weight"] = pack_bytes(w, precision[parts[0]])
        if w_out is not None:
            stored[f"{gemm}.outliers"] = np.asarray(cols, dtype=np.int32)
            stored[f"{gemm}.outlier_weight"] = w_out

    add(LM_HEAD, (LM_HEAD,), params.get(f"{LM_HEAD}.weight", params[f"{EMBED}.weight"]))
    for i in range(n_layers):
        p = layer_prefix(i)
        for fused, parts in FUSED.items():
            full = tuple(f"{p}.{n}" for n in parts)
            add(f"{p}.{fused}", full, np.concatenate([params[f"{n}.weight"] for n in full]))
        for n in NORMS:
            stored[f"{p}.{n}.weight"] = params[f"{p}.{n}.weight"]
    if outliers:
        raise ValueError(f"outlier channels for GEMMs the decoder does not have: {sorted(outliers)[:5]}")
    stored = {k: np.ascontiguousarray(v) for k, v in stored.items()}
    spec = dict(kind="decoder", model=dict(cfg), precisions=precision, kv_cache=kv_cache)
    return spec, stored
