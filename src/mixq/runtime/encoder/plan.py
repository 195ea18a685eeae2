"""EncoderPlan: a lowered encoder spec and its stored arrays, built into the core's Encoder and
run in one call per batch. Loading and running needs numpy and mixq only."""
from __future__ import annotations

import numpy as np

from ... import _core
from ...ops import PackedWeight
from ...quant import parse_precision
from .layout import _NORMS, ATTENTION, LINEARS, WORD_EMBEDDINGS, layer_prefix
from .validate import validate_encoder_plan


def _linear_mode(precision: str) -> str:
    """The core Encoder's name for a linear's mode (its int8 linears quantize per token)."""
    mode = parse_precision(precision).entry.core_mode
    return "dynamic_int8" if mode == "int8" else mode


def build_core_encoder(spec: dict, stored: dict[str, np.ndarray]):
    """The core Encoder for a spec and its stored arrays."""

    def get(key):
        if key not in stored:
            raise ValueError(f"encoder plan lacks array {key!r}")
        return stored[key]

    def linear(name, precision):
        packed = PackedWeight.from_bytes(get(f"{name}.weight").tobytes())
        return _core.EncoderLinear(packed._core, _linear_mode(precision), get(f"{name}.bias"),
                                   stored.get(f"{name}.smooth"))

    enc = _core.Encoder(spec["hidden"], spec["heads"], spec["eps"])
    prec = spec["precisions"]
    if not parse_precision(prec[WORD_EMBEDDINGS]).entry.quantized_weights:
        enc.set_word_embeddings_f32(get(f"{WORD_EMBEDDINGS}.weight"))
    else:
        enc.set_word_embeddings_s8(get(f"{WORD_EMBEDDINGS}.codes"), get(f"{WORD_EMBEDDINGS}.scale"))
    enc.set_embeddings(get("embeddings.position_embeddings.weight"), get("embeddings.token_type_embeddings.weight"),
                       get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"))
    for i in range(spec["layers"]):
        p = layer_prefix(i)
        if spec["fused_qkv"][i]:
            qkv = [linear(f"{p}.attention.self.qkv", prec[f"{p}.{LINEARS[0]}"])]
        else:
            qkv = [linear(f"{p}.{n}", prec[f"{p}.{n}"]) for n in LINEARS[:3]]
        out, ffn_in, ffn_out = (linear(f"{p}.{n}", prec[f"{p}.{n}"]) for n in LINEARS[3:])
        norms = [get(f"{p}.{n}.{part}") for n in _NORMS for part in ("weight", "bias")]
        enc.add_layer(qkv, out, ffn_in, ffn_out, *norms, parse_precision(prec[f"{p}.{ATTENTION}"]).int8_activations)
    return enc


class EncoderPlan:
    """A compiled transformer encoder: ``run(input_ids, attention_mask)`` -> last hidden state,
    ``embed(...)`` -> mean-pooled sentence embeddings, ``profile``, ``save``."""

    def __init__(self, spec: dict, stored: dict[str, np.ndarray], meta: dict | None = None):
        self.spec, self.stored, self.meta = spec, stored, dict(meta or {})
        validate_encoder_plan(spec, stored)  # before the core sees it (raises PlanFileError)
        self._core = build_core_encoder(spec, stored)

    @property
    def weight_bytes(self) -> int:
        """Bytes of everything the encoder holds: packed weights (codes, scales, zero points,
        sums), biases, norms and embedding tables."""
        return int(self._core.weight_bytes)

    def layers(self) -> list[dict]:
        return [dict(name=n, precision=p) for n, p in self.spec["precisions"].items()]

    def _inputs(self, input_ids, attention_mask, token_type_ids):
        def ints(a, what):
            a = np.asarray(a)
            if a.dtype.kind not in "iub":
                raise TypeError(f"{what} must be an integer array, got dtype {a.dtype}")
            if a.ndim == 1:
                a = a[None]
            if a.ndim != 2:
                raise ValueError(f"{what} must be [batch, seq], got shape {a.shape}")
            return np.ascontiguousarray(a, dtype=np.int64)

        ids = ints(input_ids, "input_ids")
        if ids.shape[1] == 0:
            raise ValueError("input_ids has sequence length 0")
        mask = None if attention_mask is None else ints(attention_mask, "attention_mask")
        types = None if token_type_ids is None else ints(token_type_ids, "token_type_ids")
        for a, what in ((mask, "attention_mask"), (types, "token_type_ids")):
            if a is not None and a.shape != ids.shape:
                raise ValueError(f"{what} must have the shape of input_ids {ids.shape}, got {a.shape}")
        return ids, types, mask

    def run(self, input_ids, attention_mask=None, token_type_ids=None) -> np.ndarray:
        """input_ids (and optional 0/1 attention_mask, token_type_ids): int [batch, seq];
        returns the last hidden state float32 [batch, seq, hidden]."""
        ids, types, mask = self._inputs(input_ids, attention_mask, token_type_ids)
        return self._core.run(ids, types, mask)[0]

    __call__ = run

    def embed(self, input_ids, attention_mask=None, token_type_ids=None) -> np.ndarray:
        """Mean of the last hidden state over the unmasked tokens: [batch, hidden]."""
        hidden = self.run(input_ids, attention_mask, token_type_ids)
        if attention_mask is None:
            return hidden.mean(axis=1)
        m = np.asarray(attention_mask, dtype=np.float32).reshape(hidden.shape[:2])[..., None]
        return (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)

    def op_names(self) -> list[str]:
        names = ["embeddings"]
        for i in range(self.spec["layers"]):
            names += [f"{layer_prefix(i)}.{n}" for n in ("qkv", "attention", "attn_out", "ffn_in", "ffn_out")]
        return names

    def profile(self, input_ids, attention_mask=None, token_type_ids=None, repeats: int = 1) -> list[dict]:
        """Per-op wall time (median of `repeats` runs after a warm-up): name, seconds."""
        ids, types, mask = self._inputs(input_ids, attention_mask, token_type_ids)
        self._core.run(ids, types, mask)
        runs = [self._core.run(ids, types, mask, True)[1] for _ in range(max(1, repeats))]
        return [dict(name=n, seconds=float(s)) for n, s in zip(self.op_names(), np.median(np.array(runs), axis=0))]

    def save(self, path) -> None:
        from ..plan_file import write_plan

        write_plan(path, self.spec, self.stored, self.meta)

    def __repr__(self) -> str:
        s = self.spec
        precisions = sorted(set(s["precisions"].values()))
        return (f"mixq.EncoderPlan({s['layers']} layers, hidden {s['hidden']}, {s['heads']} heads, "
                f"precisions {precisions}, weights {self.weight_bytes / 1e6:.2f} MB)")
