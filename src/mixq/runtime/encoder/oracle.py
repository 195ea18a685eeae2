"""The fake-quant oracle of an encoder plan: the lowered encoder in float64 (PyTorch), with fake
quantization exactly where the plan quantizes: weights as packed, activations of int8 layers per
token with dynamic scales (the core's rounding, in float32), attention operands per row / key /
channel when the layer's attention is int8, word embeddings per row.

The plan accumulates integers exactly and applies float32 epilogues; the oracle computes in
float64, so a value can land on the other side of a rounding boundary. Documented bound (tests):
on unmasked tokens, max |plan - oracle| <= 2 % of max |oracle| for int8 configs.
"""
from __future__ import annotations

import math

import numpy as np

from ...quant import choose_qparams, fake_quant, fake_quant_weight, parse_precision
from .layout import ATTENTION, LINEARS, WORD_EMBEDDINGS, layer_prefix
from .lower import smoothed_weight


def _per_row_u8(x: np.ndarray) -> np.ndarray:
    """Dynamic per-row asymmetric u8 fake quantization, as the core's quantize_rows_u8."""
    x = np.asarray(x, dtype=np.float32).reshape(-1, x.shape[-1])
    scale, zp = choose_qparams(x.min(axis=1), x.max(axis=1), "uint8")
    return fake_quant(x, scale, zp, "uint8", axis=0)


def _per_row_s8(x: np.ndarray) -> np.ndarray:
    """Dynamic symmetric int8 per row (keys per token, values per channel)."""
    return fake_quant_weight(np.asarray(x, dtype=np.float32), bits=8)


def simulate_encoder(spec: dict, params: dict[str, np.ndarray], input_ids, attention_mask=None,
                     token_type_ids=None, stored: dict | None = None) -> np.ndarray:
    """Last hidden state [B, S, H] (float64) of the lowered encoder `spec` on float `params`;
    `stored` (EncoderPlan.stored) brings the smoothing factors of a calibrated plan."""
    import torch
    import torch.nn.functional as F

    prec = spec["precisions"]
    ids = np.asarray(input_ids, dtype=np.int64)
    B, S = ids.shape
    mask = np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask, dtype=np.int64)
    types = np.zeros_like(ids) if token_type_ids is None else np.asarray(token_type_ids, dtype=np.int64)
    H, heads, eps = spec["hidden"], spec["heads"], spec["eps"]
    d = H // heads
    T = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731

    word = params[f"{WORD_EMBEDDINGS}.weight"]
    word = parse_precision(prec[WORD_EMBEDDINGS]).fake_quant(word)
    x = T(word[ids]) + T(params["embeddings.position_embeddings.weight"][:S])[None] + \
        T(params["embeddings.token_type_embeddings.weight"][types])
    x = F.layer_norm(x, (H,), T(params["embeddings.LayerNorm.weight"]), T(params["embeddings.LayerNorm.bias"]), eps)

    def smooth_of(name):  # the smoothing factors of a calibrated plan's linear (q, k, v may share one GEMM)
        if not stored:
            return None
        i, local = int(name.split(".")[2]), name.split(".", 3)[3]
        fused = local in LINEARS[:3] and spec["fused_qkv"][i]
        return stored.get(f"{layer_prefix(i)}.attention.self.qkv.smooth" if fused else f"{name}.smooth")

    def linear(name, v):
        p = prec[name]
        smooth = smooth_of(name)
        if parse_precision(p).int8_activations:
            x = v.numpy().astype(np.float32)
            if smooth is not None:
                x = (x * smooth).astype(np.float32)
            v = T(_per_row_u8(x)).reshape(v.shape)
        w = T(parse_precision(p).fake_quant(smoothed_weight(params[f"{name}.weight"], smooth)))
        return v @ w.T + T(params[f"{name}.bias"])

    mask_add = T(np.where(mask == 0, np.finfo(np.float32).min, 0.0))
    # Keys after a sequence's last unmasked token are dropped, as in the core (a fully masked
    # sequence keeps them all).
    keys_len = [int(np.flatnonzero(row)[-1]) + 1 if row.any() else S for row in mask]

    def attend(q, k, v, madd, int8):  # one sequence: [heads, S, d] x [heads, L, d]
        if int8:
            q = T(_per_row_u8(q.numpy())).reshape(q.shape)
            k = T(_per_row_s8(k.numpy().reshape(-1, d))).reshape(k.shape)
            vt = v.transpose(-1, -2)
            v = T(_per_row_s8(vt.numpy().reshape(-1, vt.shape[-1]))).reshape(vt.shape).transpose(-1, -2)
        probs = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(d) + madd, dim=-1)
        if int8:
            probs = T(_per_row_u8(probs.numpy())).reshape(probs.shape)
        return probs @ v

    for i in range(spec["layers"]):
        p = layer_prefix(i)
        q, k, v = (linear(f"{p}.{n}", x).reshape(B, S, heads, d).transpose(1, 2) for n in LINEARS[:3])
        int8 = parse_precision(prec[f"{p}.{ATTENTION}"]).int8_activations
        ctx = torch.stack([attend(q[b], k[b, :, :L], v[b, :, :L], mask_add[b, :L], int8)
                           for b, L in enumerate(keys_len)]).transpose(1, 2).reshape(B, S, H)
        x = F.layer_norm(linear(f"{p}.{LINEARS[3]}", ctx) + x, (H,), T(params[f"{p}.attention.output.LayerNorm.weight"]),
                         T(params[f"{p}.attention.output.LayerNorm.bias"]), eps)
        h = F.gelu(linear(f"{p}.{LINEARS[4]}", x))
        x = F.layer_norm(linear(f"{p}.{LINEARS[5]}", h) + x, (H,), T(params[f"{p}.output.LayerNorm.weight"]),
                         T(params[f"{p}.output.LayerNorm.bias"]), eps)
    return x.numpy()
