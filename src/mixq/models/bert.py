"""A plain torch.nn BERT encoder whose parameter names are Hugging Face's BertModel names.

Same names means a Hugging Face (or sentence-transformers) BERT checkpoint loads with
``load_state_dict(strict=True)`` once its extras are dropped (see :func:`hf_encoder_state`),
and mixq's runtime reads every ``nn.Linear`` by its module path
(``encoder.layer.{i}.attention.self.query`` ...).

Inference only: no dropout, no pooler (the sentence-embedding models we run use mean pooling,
:func:`mean_pool`), absolute position embeddings 0..S-1.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BertConfig",
    "BertModel",
    "bert_large",
    "hf_encoder_state",
    "mean_pool",
]

# hidden_act values of HF configs we can run; "gelu" is the exact erf GELU.
# (partials, not lambdas: the model stays picklable.)
_ACTIVATIONS = {
    "gelu": partial(F.gelu, approximate="none"),
    "gelu_new": partial(F.gelu, approximate="tanh"),
    "gelu_pytorch_tanh": partial(F.gelu, approximate="tanh"),
    "relu": F.relu,
}

# HF config.json key -> BertConfig field (the rest of a config.json is ignored).
_HF_KEYS = {
    "vocab_size": "vocab_size",
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "intermediate_size": "intermediate_size",
    "max_position_embeddings": "max_position_embeddings",
    "type_vocab_size": "type_vocab_size",
    "layer_norm_eps": "layer_norm_eps",
    "hidden_act": "hidden_act",
}


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"  # exact (erf) GELU, as BERT and MiniLM were trained with

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"BertConfig.{name} must be a positive int, got {v!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"BertConfig: hidden_size {self.hidden_size} is not a multiple of "
                             f"num_heads {self.num_heads}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"BertConfig.layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")
        if self.hidden_act not in _ACTIVATIONS:
            raise ValueError(f"BertConfig.hidden_act {self.hidden_act!r} not supported; "
                             f"choose from {sorted(_ACTIVATIONS)}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @classmethod
    def from_json(cls, source: str | os.PathLike | dict) -> "BertConfig":
        """From a Hugging Face config.json: a dict, a path to the file, or its directory.
        Keys other than the BERT sizes are ignored; missing sizes take BERT-base defaults."""
        if isinstance(source, dict):
            data, where = source, "config dict"
        else:
            path = Path(source)
            if path.is_dir():
                path = path / "config.json"
            data, where = json.loads(path.read_text()), str(path)
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
        kind = data.get("position_embedding_type", "absolute")
        if kind != "absolute":
            raise ValueError(f"{where}: position_embedding_type {kind!r} is not supported (absolute only)")
        return cls(**{field: data[key] for key, field in _HF_KEYS.items() if key in data})

    def to_json(self) -> dict:
        """The HF config.json keys of this config (inverse of from_json)."""
        mine = asdict(self)
        return {key: mine[field] for key, field in _HF_KEYS.items()}

    @classmethod
    def bert_large(cls, **overrides) -> "BertConfig":
        """BERT-Large uncased: 24 layers, hidden 1024, 16 heads, FFN 4096."""
        return cls(**{**dict(vocab_size=30522, hidden_size=1024, num_layers=24, num_heads=16,
                             intermediate_size=4096, max_position_embeddings=512,
                             type_vocab_size=2), **overrides})

    @classmethod
    def minilm_l6(cls, **overrides) -> "BertConfig":
        """MiniLM-L6-H384 (all-MiniLM-L6-v2): 6 layers, hidden 384, 12 heads, FFN 1536."""
        return cls(**{**dict(vocab_size=30522, hidden_size=384, num_layers=6, num_heads=12,
                             intermediate_size=1536, max_position_embeddings=512,
                             type_vocab_size=2), **overrides})


# ---------------------------------------------------------------- modules
# Small modules only so that the attribute paths equal HF's; each forward is a line or two.
class BertEmbeddings(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, input_ids, token_type_ids):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = (self.word_embeddings(input_ids) + self.position_embeddings(positions)[None]
             + self.token_type_embeddings(token_type_ids))
        return self.LayerNorm(x)


class BertSelfAttention(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def _heads(self, x):  # [B, S, H] -> [B, heads, S, head_dim]
        b, s, _ = x.shape
        return x.view(b, s, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x, additive_mask):
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        scores = q @ k.transpose(-1, -2) * (1.0 / math.sqrt(self.head_dim)) + additive_mask
        probs = torch.softmax(scores.float(), dim=-1).to(v.dtype)  # softmax in fp32
        ctx = probs @ v  # [B, heads, S, head_dim]
        b, _, s, _ = ctx.shape
        return ctx.transpose(1, 2).reshape(b, s, self.num_heads * self.head_dim)


class BertDenseNorm(nn.Module):
    """LayerNorm(dense(x) + residual): HF's attention.output (input: hidden size) and the
    layer's output (input: the FFN's intermediate size)."""

    def __init__(self, cfg: BertConfig, in_features: int):
        super().__init__()
        self.dense = nn.Linear(in_features, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class BertAttention(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(cfg)
        self.output = BertDenseNorm(cfg, cfg.hidden_size)

    def forward(self, x, additive_mask):
        return self.output(self.self(x, additive_mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.act = _ACTIVATIONS[cfg.hidden_act]

    def forward(self, x):
        return self.act(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.attention = BertAttention(cfg)
        self.intermediate = BertIntermediate(cfg)
        self.output = BertDenseNorm(cfg, cfg.intermediate_size)

    def forward(self, x, additive_mask):
        x = self.attention(x, additive_mask)
        return self.output(self.intermediate(x), x)


class BertEncoder(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.num_layers))

    def forward(self, x, additive_mask):
        for layer in self.layer:
            x = layer(x, additive_mask)
        return x


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Masked mean over tokens, [B, S, H] -> [B, H] (sentence-transformers' mean pooling:
    padded tokens excluded, the count clamped at 1e-9)."""
    if hidden.dim() != 3:
        raise ValueError(f"mean_pool: hidden must be [batch, seq, hidden], got shape {tuple(hidden.shape)}")
    if attention_mask is None:
        return hidden.mean(1)
    if tuple(attention_mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError(f"mean_pool: attention_mask shape {tuple(attention_mask.shape)} does not "
                         f"match hidden's [batch, seq] {tuple(hidden.shape[:2])}")
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


class BertModel(nn.Module):
    """BERT encoder: ``forward(input_ids, attention_mask=None, token_type_ids=None)`` -> the
    last hidden state, float32 [batch, seq, hidden]. ``attention_mask`` is 1 for real tokens and
    0 for padding; padded keys get a large negative score, so they take no attention."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config  # read by mixq.compile_encoder (num_heads, hidden_act)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)

    @staticmethod
    def _as_long(name, t, shape=None):
        t = torch.as_tensor(t)
        if t.dtype.is_floating_point:
            raise TypeError(f"BertModel: {name} must be an integer tensor, got {t.dtype}")
        if t.dim() != 2 or (shape is not None and tuple(t.shape) != shape):
            want = "[batch, seq]" if shape is None else f"{list(shape)} (as input_ids)"
            raise ValueError(f"BertModel: {name} must have shape {want}, got {tuple(t.shape)}")
        return t.long()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        ids = self._as_long("input_ids", input_ids)
        b, s = ids.shape
        cfg = self.config
        if s > cfg.max_position_embeddings:
            raise ValueError(f"BertModel: sequence length {s} exceeds max_position_embeddings "
                             f"{cfg.max_position_embeddings}")
        types = (torch.zeros_like(ids) if token_type_ids is None
                 else self._as_long("token_type_ids", token_type_ids, (b, s)))
        x = self.embeddings(ids, types)
        if attention_mask is None:
            additive = torch.zeros((), dtype=x.dtype)
        else:
            keep = self._as_long("attention_mask", attention_mask, (b, s))
            # [B, 1, 1, S]: broadcast over heads and query positions; masks keys only.
            additive = (1.0 - keep[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        return self.encoder(x, additive)

    def embed(self, input_ids, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        """Sentence embeddings [batch, hidden]: mean_pool of the last hidden state. (all-MiniLM
        also L2-normalizes them; cosine similarities are the same either way.)"""
        mask = None if attention_mask is None else torch.as_tensor(attention_mask)
        return mean_pool(self.forward(input_ids, mask, token_type_ids), mask)

    def init_weights(self, seed: int | None = 0) -> "BertModel":
        """BERT's initialization: linear and embedding weights N(0, 0.02), biases 0, LayerNorm
        1 / 0. Seeded, so random-weight models are reproducible."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    m.weight.normal_(0.0, 0.02, generator=gen)
                    if getattr(m, "bias", None) is not None:
                        m.bias.zero_()
                elif isinstance(m, nn.LayerNorm):
                    m.weight.fill_(1.0)
                    m.bias.zero_()
        return self


def bert_large(seed: int | None = 0, **config_overrides) -> BertModel:
    """BERT-Large with random (BERT-initialized, seeded) weights, in eval mode. Overrides go to
    the config, e.g. ``bert_large(num_layers=4)`` for a quick run."""
    return BertModel(BertConfig.bert_large(**config_overrides)).init_weights(seed).eval()


def hf_encoder_state(state: dict) -> tuple[dict, list[str]]:
    """A Hugging Face BERT state dict -> (the entries BertModel has, the keys dropped).

    Dropped: ``pooler.*`` (we pool by mean, not by the [CLS] pooler) and the
    ``embeddings.position_ids`` buffer older checkpoints saved (checked to be 0..N-1, which is
    what we use). Checkpoints of BertFor* heads keep the encoder under ``bert.``: it is taken
    from there and the head's weights are dropped."""
    if any(k.startswith("bert.") for k in state):
        dropped = [k for k in state if not k.startswith("bert.")]
        state = {k[len("bert."):]: v for k, v in state.items() if k.startswith("bert.")}
    else:
        dropped = []
    kept = {}
    for k, v in state.items():
        if k == "embeddings.position_ids":
            ids = torch.as_tensor(v).reshape(-1)
            if not torch.equal(ids.long(), torch.arange(ids.numel())):
                raise ValueError("checkpoint's embeddings.position_ids is not 0..N-1; "
                                 "BertModel uses absolute positions 0..S-1")
            dropped.append(k)
        elif k.startswith("pooler."):
            dropped.append(k)
        else:
            kept[k] = v
    return kept, dropped
