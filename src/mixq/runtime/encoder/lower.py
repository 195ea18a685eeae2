"""Transformer encoder plans: a BERT-style encoder run by the core in one call per batch.

Layers a config can set (module paths, as in Hugging Face's BertModel), per encoder layer i:
``encoder.layer.{i}.attention.self.{query,key,value}``, ``encoder.layer.{i}.attention.output.dense``,
``encoder.layer.{i}.intermediate.dense``, ``encoder.layer.{i}.output.dense`` (any precision; int8
activations are quantized per token with dynamic scales), plus two pseudo-layers:

- ``encoder.layer.{i}.attention.matmul``: QK^T and PV; int8 with dynamic scales when its precision
  has int8 activations (w8a8, w4a8, w2a8: queries and probabilities per row, keys per token and
  values per channel, symmetric), else fp32;
- ``embeddings.word_embeddings``: the token table; int8 rows (one scale per row, dequantized at
  lookup) when its precision stores weights in 8 bits or fewer, else fp32.

With calibration batches, int8-activation linears are smoothed (SmoothQuant): input channel j is
multiplied by f_j = wmax_j^(1-alpha) / xmax_j^alpha in the core before the per-token quantization
and the weight column by 1/f_j before packing, so outlier channels of LayerNorm and GELU outputs
no longer set every token's scale. Position/type embeddings, LayerNorm, softmax and GELU run in fp32. Q, K and V of a layer with one
precision run as one fused [3H, H] GEMM. Loading and running needs numpy and mixq only.
"""
from __future__ import annotations

import numpy as np

from ...quant import QuantConfig, parse_precision
from .layout import _NORMS, ATTENTION, LINEARS, WORD_EMBEDDINGS, layer_names, layer_prefix


def smoothing_factors(x_max: np.ndarray, weights: list[np.ndarray], alpha: float) -> np.ndarray:
    """SmoothQuant multipliers of a linear input, f_j = wmax_j^(1-alpha) / xmax_j^alpha (float32):
    x_j * f_j and W[:, j] / f_j have balanced ranges. Channels that are all zero keep f_j = 1."""
    w_max = np.max([np.abs(w).max(axis=0) for w in weights], axis=0).astype(np.float64)
    x_max = np.asarray(x_max, dtype=np.float64)
    f = np.ones_like(x_max)
    ok = (x_max > 0) & (w_max > 0)
    f[ok] = w_max[ok] ** (1 - alpha) / x_max[ok] ** alpha
    return np.clip(f, 1e-4, 1e4).astype(np.float32)


def smoothed_weight(w: np.ndarray, smooth: np.ndarray | None) -> np.ndarray:
    """The weight a smoothed linear packs: W[:, j] / f_j in float32 (the oracle uses this too)."""
    w = np.asarray(w, dtype=np.float32)
    return w if smooth is None else (w / smooth[None, :]).astype(np.float32)


def _pack(w: np.ndarray, precision: str) -> np.ndarray:
    packed = parse_precision(precision).pack(np.ascontiguousarray(w, dtype=np.float32))
    return np.frombuffer(packed.to_bytes(), dtype=np.uint8)


def word_embedding_codes(word: np.ndarray):
    """int8 rows of the token table, one scale per row (dequantized at lookup)."""
    codes, scale, _, _ = parse_precision("w8a8").quantize(word)
    return np.asarray(codes, dtype=np.int8), np.asarray(scale, dtype=np.float32)


def lower_encoder(spec: dict, params: dict[str, np.ndarray], config, input_max: dict | None = None,
                  alpha: float = 0.5) -> tuple[dict, dict[str, np.ndarray]]:
    """(plan spec with each layer's precision, stored arrays) for `config` (see mixq.quant.config).
    input_max: per-channel max |input| of each linear (calibration); int8-activation linears
    are then smoothed with strength `alpha`."""
    cfg = QuantConfig.from_any(config)
    names = layer_names(spec["layers"])
    cfg.check_names(names)
    precision = {n: str(cfg.precision_of(n)) for n in names}
    stored: dict[str, np.ndarray] = {}
    word = params[f"{WORD_EMBEDDINGS}.weight"]
    precision[WORD_EMBEDDINGS] = str(parse_precision(precision[WORD_EMBEDDINGS]).for_kernel_set("embedding"))
    if parse_precision(precision[WORD_EMBEDDINGS]).entry.quantized_weights:
        stored[f"{WORD_EMBEDDINGS}.codes"], stored[f"{WORD_EMBEDDINGS}.scale"] = word_embedding_codes(word)
    else:
        stored[f"{WORD_EMBEDDINGS}.weight"] = word
    for key in ("embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight",
                "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"):
        stored[key] = params[key]
    def add_linear(key, names):  # one GEMM for the linears `names` (they share their input)
        weights = [params[f"{n}.weight"] for n in names]
        smooth = None
        if input_max is not None and parse_precision(precision[names[0]]).int8_activations:
            smooth = smoothing_factors(input_max[names[0]], weights, alpha)
            stored[f"{key}.smooth"] = smooth
        stored[f"{key}.weight"] = _pack(smoothed_weight(np.concatenate(weights), smooth), precision[names[0]])
        stored[f"{key}.bias"] = np.concatenate([params[f"{n}.bias"] for n in names])

    fused = []
    for i in range(spec["layers"]):
        p = layer_prefix(i)
        qkv = [f"{p}.{n}" for n in LINEARS[:3]]
        fused.append(len({precision[n] for n in qkv}) == 1)
        if fused[-1]:
            add_linear(f"{p}.attention.self.qkv", qkv)
        for local in LINEARS[3:] if fused[-1] else LINEARS:
            add_linear(f"{p}.{local}", [f"{p}.{local}"])
        for local in _NORMS:
            for part in ("weight", "bias"):
                stored[f"{p}.{local}.{part}"] = params[f"{p}.{local}.{part}"]
        att = parse_precision(precision[f"{p}.{ATTENTION}"])
        precision[f"{p}.{ATTENTION}"] = str(att.for_kernel_set("attention"))
    stored = {k: np.ascontiguousarray(v) for k, v in stored.items()}
    return dict(spec, precisions=precision, fused_qkv=fused), stored


