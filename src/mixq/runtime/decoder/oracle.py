"""The fake-quant oracle of a decoder plan: the lowered decoder in float64 (PyTorch), with fake
quantization exactly where the plan quantizes: weights as packed (the precision table's
fake_quant), inputs of int8-activation linears per token with dynamic scales (the core's
rounding, in float32). RMSNorm, RoPE, attention and the SiLU gate are float, as in the core.

The plan accumulates integers exactly and applies float32 epilogues; the oracle computes in
float64, so a value can land on the other side of a rounding boundary and flip a code.
Documented bound (tests/test_decoder.py, random-weight decoders): max |plan - oracle| over the
logits <= 2 % of max |oracle| for w8a8, w4a8, w2a8 and weight-only configs.
"""
from __future__ import annotations

import math

import numpy as np

from ...quant import parse_precision
from ..encoder.oracle import _per_row_u8
from .layout import EMBED, FINAL_NORM, LM_HEAD, layer_prefix


def simulate_decoder(spec: dict, params: dict[str, np.ndarray], ids) -> np.ndarray:
    """Logits [S, vocab] (float64) of the lowered decoder `spec` on float `params` for one fresh sequence."""
    import torch

    m, prec = spec["model"], spec["precisions"]
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    S, H, heads, kv = ids.size, m["hidden_size"], m["num_heads"], m["num_kv_heads"]
    d, eps = H // heads, m["rms_norm_eps"]
    T = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731

    def linear(name, v, weight_key=None):
        p = parse_precision(prec[name])
        if p.int8_activations:
            v = T(_per_row_u8(v.numpy().astype(np.float32))).reshape(v.shape)
        w = params.get(f"{weight_key or name}.weight")
        if w is None:  # tied output head
            w = params[f"{EMBED}.weight"]
        return v @ T(p.fake_quant(np.asarray(w, dtype=np.float32))).T

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
