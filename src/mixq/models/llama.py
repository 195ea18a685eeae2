"""A plain torch.nn Llama-style decoder whose parameter names are Hugging Face's LlamaForCausalLM names.

RMSNorm, rotary position embeddings (HF's "rotate half" layout), grouped-query attention,
SwiGLU MLP, tied or untied input/output embeddings. Same names means a Hugging Face Llama
state dict loads with ``load_state_dict(strict=True)`` (see :func:`hf_decoder_state`), and
mixq's decoder runtime reads every projection by its module path
(``model.layers.{i}.self_attn.q_proj`` ...).

Inference and training: no dropout, no bias (Llama has none), causal attention over
positions ``start_pos .. start_pos + S - 1`` with an optional KV cache for reference decoding.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LlamaConfig",
    "LlamaForCausalLM",
    "hf_decoder_state",
    "llama2_7b_layer",
    "tiny_llama_1b",
]

# HF config.json key -> LlamaConfig field (the rest of a config.json is ignored).
_HF_KEYS = {
    "vocab_size": "vocab_size",
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "num_key_value_heads": "num_kv_heads",
    "intermediate_size": "intermediate_size",
    "max_position_embeddings": "max_position_embeddings",
    "rms_norm_eps": "rms_norm_eps",
    "rope_theta": "rope_theta",
    "tie_word_embeddings": "tie_word_embeddings",
}


@dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int = 32000
    hidden_size: int = 2048
    num_layers: int = 22
    num_heads: int = 32
    num_kv_heads: int = 4
    intermediate_size: int = 5632
    max_position_embeddings: int = 2048
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "num_kv_heads",
                     "intermediate_size", "max_position_embeddings"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"LlamaConfig.{name} must be a positive int, got {v!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"LlamaConfig: hidden_size {self.hidden_size} is not a multiple of "
                             f"num_heads {self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"LlamaConfig: num_heads {self.num_heads} is not a multiple of "
                             f"num_kv_heads {self.num_kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"LlamaConfig: head_dim {self.head_dim} must be even for rotary embeddings")
        for name in ("rms_norm_eps", "rope_theta"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"LlamaConfig.{name} must be > 0, got {v!r}")
        if not isinstance(self.tie_word_embeddings, bool):
            raise ValueError(f"LlamaConfig.tie_word_embeddings must be a bool, got {self.tie_word_embeddings!r}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LlamaConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_hf(cls, path_or_dict) -> "LlamaConfig":
        """From a Hugging Face ``config.json`` (path, folder or dict)."""
        d = path_or_dict
        if not isinstance(d, dict):
            p = os.fspath(d)
            if os.path.isdir(p):
                p = os.path.join(p, "config.json")
            with open(p, encoding="utf-8") as f:
                d = json.load(f)
        act = d.get("hidden_act", "silu")
        if act != "silu":
            raise ValueError(f"only SiLU-gated (SwiGLU) Llama MLPs are supported, config has hidden_act={act!r}")
        if d.get("rope_scaling"):
            raise ValueError(f"rope_scaling {d['rope_scaling']!r} is not supported")
        kw = {ours: d[hf] for hf, ours in _HF_KEYS.items() if hf in d}
        kw.setdefault("num_kv_heads", kw.get("num_heads", cls.num_heads))
        if "rope_theta" in kw:
            kw["rope_theta"] = float(kw["rope_theta"])
        return cls(**kw)


def tiny_llama_1b(**overrides) -> LlamaConfig:
    """TinyLlama-1.1B shape: hidden 2048, 22 layers, 32 heads / 4 KV heads, FFN 5632."""
    return replace(LlamaConfig(), **overrides)


def llama2_7b_layer(num_layers: int = 1, **overrides) -> LlamaConfig:
    """Llama-2-7B layer shape (hidden 4096, 32 heads, no GQA, FFN 11008), few layers by default."""
    return replace(LlamaConfig(hidden_size=4096, num_layers=num_layers, num_heads=32, num_kv_heads=32,
                               intermediate_size=11008, max_position_embeddings=4096), **overrides)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        # computed in float32 whatever the input dtype, as HF does
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def rope_tables(head_dim: int, positions: torch.Tensor, theta: float):
    """cos, sin [S, head_dim] for HF's rotate-half layout (frequency i on lanes i and i + d/2)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    ang = positions.to(torch.float64)[:, None] * inv_freq[None, :]
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos().float(), ang.sin().float()


def apply_rope(x, cos, sin):
    """x [..., S, head_dim]."""
    half = x.shape[-1] // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rot * sin


class LlamaAttention(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.cfg = cfg
        d, hd = cfg.hidden_size, cfg.head_dim
        self.q_proj = nn.Linear(d, cfg.num_heads * hd, bias=False)
        self.k_proj = nn.Linear(d, cfg.kv_dim, bias=False)
        self.v_proj = nn.Linear(d, cfg.kv_dim, bias=False)
        self.o_proj = nn.Linear(cfg.num_heads * hd, d, bias=False)

    def forward(self, x, cos, sin, cache=None):
        cfg = self.cfg
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, cfg.num_heads, cfg.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, s, cfg.num_kv_heads, cfg.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, s, cfg.num_kv_heads, cfg.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        past = 0
        if cache is not None:
            if cache:
                past = cache[0].shape[2]
                k = torch.cat([cache[0], k], dim=2)
                v = torch.cat([cache[1], v], dim=2)
            cache[:] = [k, v]
        rep = cfg.num_heads // cfg.num_kv_heads
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        # query i (absolute position past + i) sees keys 0 .. past + i
        t = k.shape[2]
        mask = torch.ones(s, t, dtype=torch.bool, device=x.device).tril(diagonal=past)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(y.transpose(1, 2).reshape(b, s, -1))


class LlamaMLP(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.self_attn = LlamaAttention(cfg)
        self.mlp = LlamaMLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x, cos, sin, cache=None):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(LlamaDecoderLayer(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class LlamaForCausalLM(nn.Module):
    """``forward(ids [B, S], start_pos=0, cache=None) -> logits [B, S, vocab]``.

    ``cache`` is a list (one entry per layer, each filled with [k, v]) that a caller passes again
    with the next tokens and ``start_pos`` = tokens seen so far: reference incremental decoding."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.config = cfg
        self.model = LlamaModel(cfg)
        self.lm_head = None if cfg.tie_word_embeddings else nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    def output_weight(self) -> torch.Tensor:
        return self.model.embed_tokens.weight if self.lm_head is None else self.lm_head.weight

    def init_weights(self, std: float = 0.02, seed: int | None = None):
        """Random normal weights (norms at 1), scaled down on the residual outputs: what training
        starts from and what the speed benchmarks run on."""
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        n_out = 2 * self.config.num_layers
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("layernorm.weight") or name == "model.norm.weight":
                    p.fill_(1.0)
                else:
                    s = std / n_out ** 0.5 if name.endswith(("o_proj.weight", "down_proj.weight")) else std
                    p.copy_(torch.randn(p.shape, generator=g) * s)
        return self

    def forward(self, ids: torch.Tensor, start_pos: int = 0, caches: list | None = None):
        cfg = self.config
        if ids.dim() != 2:
            raise ValueError(f"ids must be [batch, seq], got shape {tuple(ids.shape)}")
        s = ids.shape[1]
        if s < 1:
            raise ValueError("ids must hold at least one token")
        if start_pos + s > cfg.max_position_embeddings:
            raise ValueError(f"positions up to {start_pos + s} exceed max_position_embeddings "
                             f"{cfg.max_position_embeddings}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= cfg.vocab_size):
            raise ValueError(f"token ids must be in [0, {cfg.vocab_size}), got {int(ids.min())}..{int(ids.max())}")
        if caches is not None and len(caches) != cfg.num_layers:
            caches.clear()
            caches.extend([] for _ in range(cfg.num_layers))
        cos, sin = rope_tables(cfg.head_dim, torch.arange(start_pos, start_pos + s), cfg.rope_theta)
        x = self.model.embed_tokens(ids)
        for i, layer in enumerate(self.model.layers):
            x = layer(x, cos, sin, None if caches is None else caches[i])
        x = self.model.norm(x)
        return F.linear(x, self.output_weight())


def hf_decoder_state(state: dict, cfg: LlamaConfig) -> dict:
    """A Hugging Face LlamaForCausalLM state dict without what our module does not hold:
    rotary ``inv_freq`` buffers (recomputed from the config) and, with tied embeddings, a
    ``lm_head.weight`` that is the embedding itself."""
    out = {k: v for k, v in state.items() if not k.endswith("rotary_emb.inv_freq")}
    if cfg.tie_word_embeddings:
        out.pop("lm_head.weight", None)
    return out
