"""Checks an encoder plan spec and its stored arrays before anything reaches the core (a plan file
is untrusted input). Every failure is a `PlanFileError` naming the layer or array and the field."""
from __future__ import annotations

import math

import numpy as np

from ..cnn.validate import _array, _fail, _get, _int, _num, _packed
from ..plan_file import PlanFileError
from .layout import _NORMS, LINEARS, WORD_EMBEDDINGS, layer_names, layer_prefix

_MAX_DIM = 1 << 20  # hidden, intermediate, vocabulary, positions
_MAX_LAYERS = 1024


def _linear(stored, name: str, mode: str, n: int, k: int) -> None:
    where = f"linear {name!r}"
    _packed(stored, f"{name}.weight", where, mode, (n, k), "", "the encoder")
    _array(stored, f"{name}.bias", where, "bias", "float32", (n,))
    if f"{name}.smooth" in stored:
        s = _array(stored, f"{name}.smooth", where, "smooth", "float32", (k,))
        if mode != "int8" or not (s > 0).all():
            _fail(where, "smooth", "applies to int8-activation linears only and must be > 0")


def validate_encoder_plan(spec, stored: dict) -> None:
    """Raises PlanFileError on the first inconsistency of an encoder plan spec with itself or its arrays."""
    from ...quant import parse_precision

    where = "encoder spec"
    dims = {key: _get(spec, key, where, lambda v: _int(v) and 1 <= v <= _MAX_DIM, f"an integer in [1, {_MAX_DIM}]")
            for key in ("hidden", "heads", "intermediate", "vocab", "max_positions")}
    h, heads = dims["hidden"], dims["heads"]
    if h % heads:
        _fail(where, "heads", f"{heads} does not divide hidden {h}")
    n_layers = _get(spec, "layers", where, lambda v: _int(v) and 0 <= v <= _MAX_LAYERS,
                    f"an integer in [0, {_MAX_LAYERS}]")
    eps = _get(spec, "eps", where, _num, "a number")
    if not (math.isfinite(eps) and np.float32(eps) > 0):
        _fail(where, "eps", f"must be finite and > 0, got {eps}")
    prec = _get(spec, "precisions", where, lambda v: isinstance(v, dict), "an object")
    fused = _get(spec, "fused_qkv", where, lambda v: isinstance(v, (list, tuple)) and len(v) == n_layers
                 and all(isinstance(b, bool) for b in v), f"{n_layers} booleans")
    entries = {}
    for name in layer_names(n_layers):
        p = _get(prec, name, f"{where} precisions", lambda v: isinstance(v, str), "a precision name")
        try:
            entries[name] = parse_precision(p)
        except (ValueError, KeyError, TypeError) as e:
            _fail(f"layer {name!r}", "precision", f"{p!r} is not a precision: {e}")

    v, pos = dims["vocab"], dims["max_positions"]
    if entries[WORD_EMBEDDINGS].entry.quantized_weights:
        _array(stored, f"{WORD_EMBEDDINGS}.codes", "embeddings", "word_embeddings", "int8", (v, h))
        _array(stored, f"{WORD_EMBEDDINGS}.scale", "embeddings", "word_embeddings", "float32", (v,))
    else:
        _array(stored, f"{WORD_EMBEDDINGS}.weight", "embeddings", "word_embeddings", "float32", (v, h))
    _array(stored, "embeddings.position_embeddings.weight", "embeddings", "position_embeddings", "float32", (pos, h))
    types = _array(stored, "embeddings.token_type_embeddings.weight", "embeddings", "token_type_embeddings",
                   "float32")
    if types.ndim != 2 or types.shape[0] < 1 or types.shape[1] != h:
        _fail("embeddings", "token_type_embeddings", f"must be [types >= 1, {h}], got {list(types.shape)}")
    for part in ("weight", "bias"):
        _array(stored, f"embeddings.LayerNorm.{part}", "embeddings", f"LayerNorm.{part}", "float32", (h,))

    inter = dims["intermediate"]
    for i in range(n_layers):
        p = layer_prefix(i)

        def mode(name):
            return entries[f"{p}.{name}"].entry.core_mode

        if fused[i]:
            _linear(stored, f"{p}.attention.self.qkv", mode(LINEARS[0]), 3 * h, h)
        else:
            for name in LINEARS[:3]:
                _linear(stored, f"{p}.{name}", mode(name), h, h)
        for name, n, k in ((LINEARS[3], h, h), (LINEARS[4], inter, h), (LINEARS[5], h, inter)):
            _linear(stored, f"{p}.{name}", mode(name), n, k)
        for name in _NORMS:
            for part in ("weight", "bias"):
                _array(stored, f"{p}.{name}.{part}", f"layer {i}", f"{name}.{part}", "float32", (h,))


__all__ = ["validate_encoder_plan", "PlanFileError"]
