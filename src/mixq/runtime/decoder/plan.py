"""DecoderPlan: a lowered decoder spec and its stored arrays, built into the core's Decoder.
One core call per prompt (prefill, GEMMs) and one per generated token (decode, GEMVs); the KV
cache lives in the core. Loading and running needs numpy and mixq only."""
from __future__ import annotations

import math
import time
from typing import Iterator

import numpy as np

from ... import _core
from ...ops import PackedWeight
from ...quant import parse_precision
from .layout import EMBED, FINAL_NORM, FUSED, LM_HEAD, NORMS, layer_prefix
from .sampling import Sampling
from .validate import validate_decoder_plan


def _linear(stored, gemm: str, precision: str):
    """The core linear of GEMM `gemm` (its stored name), with its outlier channels if it has any."""
    mode = parse_precision(precision).entry.core_mode
    packed = PackedWeight.from_bytes(stored[f"{gemm}.weight"].tobytes())
    lin = _core.EncoderLinear(packed._core, "dynamic_int8" if mode == "int8" else mode, None)
    if f"{gemm}.outliers" in stored:
        lin.set_outliers(stored[f"{gemm}.outliers"], stored[f"{gemm}.outlier_weight"])
    return lin


def build_core_decoder(spec: dict, stored: dict[str, np.ndarray]):
    m, prec = spec["model"], spec["precisions"]
    dec = _core.Decoder(m["hidden_size"], m["num_heads"], m["num_kv_heads"], m["max_position_embeddings"],
                        float(m["rms_norm_eps"]), float(m["rope_theta"]), spec.get("kv_cache", "fp32") == "int8")
    dec.set_embeddings(stored[f"{EMBED}.weight"])
    dec.set_head(stored[f"{FINAL_NORM}.weight"], _linear(stored, LM_HEAD, prec[LM_HEAD]))
    for i in range(m["num_layers"]):
        p = layer_prefix(i)
        lin = [_linear(stored, f"{p}.{f}", prec[f"{p}.{parts[0]}"]) for f, parts in FUSED.items()]
        dec.add_layer(*lin, *(stored[f"{p}.{n}.weight"] for n in NORMS))
    return dec


class DecoderPlan:
    """A compiled Llama-style decoder.

    - ``logits(ids)``: [len(ids), vocab] for a fresh sequence (one prefill call);
    - ``generate(ids, max_new_tokens, sampling)``: the new token ids;
    - ``stream(ids, max_new_tokens, sampling)``: the same, yielded one by one as they are made;
    - ``perplexity(ids, window)``; ``save(path)``.
    One sequence at a time per plan: the KV cache is the plan's (load a plan per thread to serve
    several sequences at once)."""

    def __init__(self, spec: dict, stored: dict[str, np.ndarray], meta: dict | None = None):
        self.spec, self.stored, self.meta = spec, stored, dict(meta or {})
        validate_decoder_plan(spec, stored)  # before the core sees it (raises PlanFileError)
        self._core = build_core_decoder(spec, stored)
        self.last_stats: dict = {}

    @property
    def config(self) -> dict:
        return dict(self.spec["model"])

    @property
    def vocab_size(self) -> int:
        return int(self.spec["model"]["vocab_size"])

    @property
    def max_positions(self) -> int:
        return int(self.spec["model"]["max_position_embeddings"])

    @property
    def weight_bytes(self) -> int:
        """Bytes of everything the decoder holds: packed weights (codes, scales, zero points, sums),
        norms and the fp32 token table."""
        return int(self._core.weight_bytes)

    @property
    def kv_bytes_per_token(self) -> int:
        return int(self._core.kv_bytes_per_token)

    def layers(self) -> list[dict]:
        return [dict(name=n, precision=p) for n, p in self.spec["precisions"].items()]

    def outlier_channels(self) -> dict[str, np.ndarray]:
        """{GEMM: its input channels computed in fp32} (GEMMs by stored name: fused
        ``model.layers.{i}.self_attn.qkv`` and ``mlp.gate_up``, ``o_proj``, ``down_proj``, ``lm_head``);
        empty without outlier channels."""
        tail = ".outliers"
        return {k[:-len(tail)]: v.copy() for k, v in self.stored.items() if k.endswith(tail)}

    def _ids(self, ids, extra: int = 0) -> np.ndarray:
        a = np.asarray(ids)
        if a.dtype.kind not in "iu":
            raise TypeError(f"token ids must be integers, got dtype {a.dtype}")
        if a.ndim == 2 and a.shape[0] == 1:
            a = a[0]
        if a.ndim != 1:
            raise ValueError(f"token ids must be one sequence [seq] (or [1, seq]), got shape {a.shape}")
        if a.size == 0:
            raise ValueError("the prompt is empty: give at least one token id")
        if a.min() < 0 or a.max() >= self.vocab_size:
            bad = int(a[(a < 0) | (a >= self.vocab_size)][0])
            raise ValueError(f"token id {bad} is outside the vocabulary [0, {self.vocab_size})")
        if a.size + extra > self.max_positions:
            raise ValueError(f"{a.size} prompt tokens + {extra} new ones exceed the model's context of "
                             f"{self.max_positions} positions")
        return np.ascontiguousarray(a, dtype=np.int64)

    def logits(self, ids) -> np.ndarray:
        """Logits of every position of a fresh sequence: float32 [len(ids), vocab]."""
        ids = self._ids(ids)
        self._core.reset()
        return self._core.forward(ids, True)

    def stream(self, ids, max_new_tokens: int, sampling=None, eos_id: int | None = None) -> Iterator[int]:
        """Yields up to max_new_tokens new token ids (stops after eos_id if given). The prompt is one
        prefill call; each new token one decode call. ``last_stats`` holds prefill and decode
        tokens/s when the iterator ends."""
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
        ids = self._ids(ids, max_new_tokens)
        pick = Sampling.from_any(sampling).picker()
        return self._stream(ids, max_new_tokens, pick, eos_id)

    def _stream(self, ids, n_new, pick, eos_id):
        self._core.reset()
        stats = self.last_stats = dict(prompt_tokens=int(ids.size), new_tokens=0)
        if n_new == 0:
            return
        t0 = time.perf_counter()
        logits = self._core.forward(ids, False)[0]
        t1 = time.perf_counter()
        stats.update(prefill_s=t1 - t0, prefill_tok_s=ids.size / (t1 - t0))
        tok = np.zeros(1, dtype=np.int64)
        for i in range(n_new):
            tok[0] = pick(logits)
            stats["new_tokens"] = i + 1
            yield int(tok[0])
            if int(tok[0]) == eos_id or i + 1 == n_new:
                break
            logits = self._core.forward(tok, False)[0]
            stats["decode_s"] = time.perf_counter() - t1
            stats["decode_tok_s"] = (i + 1) / stats["decode_s"]

    def generate(self, ids, max_new_tokens: int, sampling=None, eos_id: int | None = None) -> np.ndarray:
        """The new token ids (int64), up to max_new_tokens (fewer if eos_id comes)."""
        return np.array(list(self.stream(ids, max_new_tokens, sampling, eos_id)), dtype=np.int64)

    def perplexity(self, ids, window: int = 128) -> float:
        """exp(mean next-token cross-entropy) over consecutive non-overlapping windows of ids
        (each window a fresh sequence, as the training script scores)."""
        ids = np.asarray(ids)
        total, count = 0.0, 0
        for s in range(0, ids.size - 1, window):
            chunk = ids[s: s + window + 1]
            if chunk.size < 2:
                break
            lg = self.logits(chunk[:-1]).astype(np.float64)
            mx = lg.max(axis=1, keepdims=True)
            lse = (mx[:, 0] + np.log(np.exp(lg - mx).sum(axis=1)))
            total += float((lse - lg[np.arange(chunk.size - 1), chunk[1:]]).sum())
            count += chunk.size - 1
        if count == 0:
            raise ValueError("perplexity needs at least two token ids")
        return math.exp(total / count)

    def save(self, path) -> None:
        from ..plan_file import write_plan

        write_plan(path, self.spec, self.stored, self.meta)

    def __repr__(self) -> str:
        m = self.spec["model"]
        precisions = sorted(set(self.spec["precisions"].values()))
        return (f"mixq.DecoderPlan({m['num_layers']} layers, hidden {m['hidden_size']}, {m['num_heads']}/"
                f"{m['num_kv_heads']} heads, vocab {m['vocab_size']}, precisions {precisions}, "
                f"weights {self.weight_bytes / 1e6:.2f} MB)")
