"""Checks a decoder plan spec and its stored arrays before anything reaches the core (a plan file
is untrusted input). Every failure is a `PlanFileError` naming the layer or array and the field."""
from __future__ import annotations

import math

import numpy as np

from ..cnn.validate import _array, _fail, _get, _int, _num, _packed
from ..plan_file import PlanFileError
from .layout import EMBED, FINAL_NORM, FUSED, LM_HEAD, NORMS, layer_prefix, linear_names

_MAX_DIM = 1 << 20  # hidden, intermediate, vocabulary, positions
_MAX_LAYERS = 1024


def _outliers(stored, gemm: str, mode: str, n: int, k: int) -> None:
    """A GEMM's outlier channels, if stored: int8 activations only; sorted, distinct, in [0, k);
    fp32 weight columns [n, count]."""
    keys = (f"{gemm}.outliers", f"{gemm}.outlier_weight")
    if not any(key in stored for key in keys):
        return
    where = f"linear {gemm!r}"
    if not all(key in stored for key in keys):
        _fail(where, "outliers", "need both the channels and their weights")
    if mode != "int8":
        _fail(where, "outliers", "apply to int8-activation linears only")
    cols = _array(stored, keys[0], where, "outliers", "int32")
    if cols.ndim != 1 or not 1 <= cols.size <= k:
        _fail(where, "outliers", f"must be 1 to {k} channels in one dimension, got shape {cols.shape}")
    if cols[0] < 0 or cols[-1] >= k or (cols.size > 1 and not (np.diff(cols) > 0).all()):
        _fail(where, "outliers", f"must be distinct increasing channels in [0, {k})")
    _array(stored, keys[1], where, "outlier_weight", "float32", (n, cols.size))


def validate_decoder_plan(spec, stored: dict) -> None:
    """Raises PlanFileError on the first inconsistency of a decoder plan spec with itself or its arrays."""
    from ...quant import parse_precision

    if not isinstance(spec, dict):
        _fail("spec", "document", "must be an object")
    where = "decoder spec model"
    m = _get(spec, "model", "decoder spec", lambda v: isinstance(v, dict), "an object")
    dims = {key: _get(m, key, where, lambda v: _int(v) and 1 <= v <= _MAX_DIM, f"an integer in [1, {_MAX_DIM}]")
            for key in ("hidden_size", "num_heads", "num_kv_heads", "intermediate_size", "vocab_size",
                        "max_position_embeddings")}
    h, heads, kv = dims["hidden_size"], dims["num_heads"], dims["num_kv_heads"]
    if h % heads or (h // heads) % 2:
        _fail(where, "num_heads", f"{heads} must divide hidden {h} into heads of even size")
    if heads % kv:
        _fail(where, "num_kv_heads", f"{kv} does not divide num_heads {heads}")
    n_layers = _get(m, "num_layers", where, lambda v: _int(v) and 1 <= v <= _MAX_LAYERS,
                    f"an integer in [1, {_MAX_LAYERS}]")
    for key in ("rms_norm_eps", "rope_theta"):
        v = _get(m, key, where, _num, "a number")
        if not (math.isfinite(v) and v > 0):
            _fail(where, key, f"must be finite and > 0, got {v}")
    _get(spec, "kv_cache", "decoder spec", lambda v: v in ("fp32", "int8"), '"fp32" or "int8"')
    prec = _get(spec, "precisions", "decoder spec", lambda v: isinstance(v, dict), "an object")
    modes = {}
    for name in linear_names(n_layers):
        p = _get(prec, name, "decoder spec precisions", lambda v: isinstance(v, str), "a precision name")
        try:
            modes[name] = parse_precision(p).entry.core_mode
        except (ValueError, KeyError, TypeError) as e:
            _fail(f"layer {name!r}", "precision", f"{p!r} is not a precision: {e}")
    v, inter, kvd = dims["vocab_size"], dims["intermediate_size"], kv * (h // heads)
    _array(stored, f"{EMBED}.weight", "embeddings", "embed_tokens", "float32", (v, h))
    _array(stored, f"{FINAL_NORM}.weight", "final norm", "weight", "float32", (h,))
    _packed(stored, f"{LM_HEAD}.weight", f"linear {LM_HEAD!r}", modes[LM_HEAD], (v, h), "", "the decoder")
    _outliers(stored, LM_HEAD, modes[LM_HEAD], v, h)
    shapes = {"self_attn.qkv": (h + 2 * kvd, h), "self_attn.o_proj": (h, h), "mlp.gate_up": (2 * inter, h),
              "mlp.down_proj": (h, inter)}
    for i in range(n_layers):
        p = layer_prefix(i)
        for fused, parts in FUSED.items():
            mode = {modes[f"{p}.{n}"] for n in parts}
            if len(mode) != 1:
                _fail(f"linear '{p}.{fused}'", "precision", "differs between the linears of one GEMM")
            mode = mode.pop()
            _packed(stored, f"{p}.{fused}.weight", f"linear '{p}.{fused}'", mode, shapes[fused], "", "the decoder")
            _outliers(stored, f"{p}.{fused}", mode, *shapes[fused])
        for n in NORMS:
            _array(stored, f"{p}.{n}.weight", f"layer {i}", f"{n}.weight", "float32", (h,))


__all__ = ["validate_decoder_plan", "PlanFileError"]
