"""The fake-quant oracle of a decoder plan: the lowered decoder in float64 (PyTorch), with fake
quantization exactly where the plan quantizes: weights as packed (the precision table's
fake_quant), inputs of int8-activation linears per token with dynamic scales (the core's
rounding, in float32). RMSNorm, RoPE, attention and the SiLU gate are float, as in the core.

The plan accumulates integers exactly and applies float32 epilogues; the oracle computes in
float64, so a value can land on the other side of a rounding boundary and flip a code.
Documented bound (tests/test_decoder.py, random-weight decoders): max |plan - oracle| over the
logits <= 2 % of max |oracle| for w8a8, w4a8, w2a8 and weight-only configs, with or without
outlier channels (tests/test_decoder_outliers.py).

Outlier channels split a linear as the plan does: its input with those channels zeroed is
quantized (so its per-token scale comes from the others) against the weight with those columns
zeroed, and x[:, O] @ W[:, O]^T is added in float64.
"""
from __future__ import annotations

import math

import numpy as np

from ...quant import parse_precision
from ..encoder.oracle import _per_row_u8
from .layout import EMBED, FINAL_NORM, LM_HEAD, gemms, layer_prefix
from .outliers import split_weight


def simulate_decoder(spec: dict, params: dict[str, np.ndarray], ids, stored: dict | None = None) -> np.ndarray:
    """Logits [S, vocab] (float64) of the lowered decoder `spec` on float `params` for one fresh
    sequence; `stored` (DecoderPlan.stored) brings the outlier channels of a calibrated plan."""
    import torch

    m, prec = spec["model"], spec["precisions"]
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    S, H, heads, kv = ids.size, m["hidden_size"], m["num_heads"], m["num_kv_heads"]
    d, eps = H // heads, m["rms_norm_eps"]
    T = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731

    stored = stored or {}
    gemm_of = {n: g for g, parts in gemms(m["num_layers"]) for n in parts}

    def linear(name, v):
        p = parse_precision(prec[name])
        w = params.get(f"{name}.weight")
        if w is None:  # tied output head
            w = params[f"{EMBED}.weight"]
        cols = stored.get(f"{gemm_of[name]}.outliers")
        w, w_out = split_weight(np.asarray(w, dtype=np.float32), cols)
        x = v
        if cols is not None:
            idx = torch.as_tensor(np.asarray(cols, dtype=np.int64))
            x = v.clone()
            x[:, idx] = 0
        if p.int8_activations:
            x = T(_per_row_u8(x.numpy().astype(np.float32))).reshape(x.shape)
        y = x @ T(p.fake_quant(w)).T
        return y if cols is None else y + v[:, idx] @ T(w_out).T

    def rms(v, w):
        return v / torch.sqrt((v * v).mean(-1, keepdim=True) + eps) * T(w)

    half = d // 2
    inv = m["rope_theta"] ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    ang = T(np.arange(S, dtype=np.float64)[:, None] * inv[None])
    cos, sin = torch.cos(ang), torch.sin(ang)

    def rope(v):  # [heads, S, d], HF's rotate-half layout
        a, b = v[..., :half], v[..., half:]
        return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)

    def kv_int8(v):  # [kv, S, d]: symmetric int8 per row, scale max|x| / 127, half to even
        a = v.numpy().astype(np.float32)
        scale = (np.abs(a).max(-1, keepdims=True) / np.float32(127)).astype(np.float32)
        q = np.where(scale > 0, np.rint(a / np.where(scale > 0, scale, 1)), 0)
        return T(q * scale)

    int8_cache = spec.get("kv_cache", "fp32") == "int8"
    x = T(params[f"{EMBED}.weight"][ids])
    causal = torch.ones(S, S, dtype=torch.bool).tril()
    for i in range(m["num_layers"]):
        p = layer_prefix(i)
        h = rms(x, params[f"{p}.input_layernorm.weight"])
        q = rope(linear(f"{p}.self_attn.q_proj", h).reshape(S, heads, d).transpose(0, 1))
        k = rope(linear(f"{p}.self_attn.k_proj", h).reshape(S, kv, d).transpose(0, 1))
        v = linear(f"{p}.self_attn.v_proj", h).reshape(S, kv, d).transpose(0, 1)
        if int8_cache:
            k, v = kv_int8(k), kv_int8(v)
        k, v = k.repeat_interleave(heads // kv, 0), v.repeat_interleave(heads // kv, 0)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        ctx = torch.softmax(scores.masked_fill(~causal, -math.inf), dim=-1) @ v
        x = x + linear(f"{p}.self_attn.o_proj", ctx.transpose(0, 1).reshape(S, H))
        h = rms(x, params[f"{p}.post_attention_layernorm.weight"])
        g = linear(f"{p}.mlp.gate_proj", h)
        x = x + linear(f"{p}.mlp.down_proj", torch.nn.functional.silu(g) * linear(f"{p}.mlp.up_proj", h))
    return linear(LM_HEAD, rms(x, params[f"{FINAL_NORM}.weight"])).numpy()
