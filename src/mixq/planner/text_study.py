"""Sentence embeddings on real text: how far a quantized encoder plan is from FP32, and the
per-layer precision search on an encoder (AIQ objective, accuracy = agreement with FP32).

    model, tok = mixq.models.load_minilm()
    batches = tokenized_batches(tok, mixq.data.sentences(1000))
    ref = reference_embeddings(model, batches)
    plan_agreement(mixq.compile_encoder(model, "w8a8"), batches, ref)
    # {'mean_cosine': 0.99.., 'min_cosine': ..., 'top1_retrieval_agreement': 0.9.., 'n': 1000}

The search's "accuracy" is 100 x the chosen agreement metric (mean cosine, or top-1 retrieval
agreement) against the FP32 embeddings, so the 1-point drop budget of the AIQ objective means a
mean cosine >= 0.99.
"""
from __future__ import annotations

import hashlib

import numpy as np

from ..quant import parse_precision
from ..runtime.encoder import ATTENTION, LINEARS, compile_encoder, layer_prefix
from .roofline import Machine, encoder_costs, model_totals
from .search import Evaluation, Problem
from .text_eval import embedding_agreement

METRICS = ("cosine", "retrieval")


def tokenized_batches(tokenizer, texts, batch_size: int = 64, max_length: int = 128) -> list[tuple]:
    """(input_ids, attention_mask) batches, each padded to its longest sentence. Sentences are
    sorted by length first (less padding); the order is restored by the embedding helpers."""
    texts = list(texts)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    batches = []
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        enc = tokenizer([texts[i] for i in idx], max_length=max_length)
        batches.append((np.asarray(idx), enc["input_ids"], enc["attention_mask"]))
    return batches


def pooled_embeddings(batches, run) -> np.ndarray:
    """Sentence embeddings in the texts' order: run(ids, mask) -> last hidden state [B, S, H]
    (any engine), mean-pooled over each sentence's real tokens."""
    n = sum(len(b[0]) for b in batches)
    out = None
    for idx, ids, mask in batches:
        hidden = np.asarray(run(ids, mask), dtype=np.float32)
        m = mask[..., None].astype(np.float32)
        e = (hidden * m).sum(1) / np.maximum(m.sum(1), 1.0)
        out = np.empty((n, e.shape[1]), np.float32) if out is None else out
        out[idx] = e
    return out


def reference_embeddings(model, batches) -> np.ndarray:
    """FP32 sentence embeddings of the torch model, in the texts' order."""
    import torch

    with torch.no_grad():
        return pooled_embeddings(batches, lambda ids, mask: model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy())


def plan_embeddings(plan, batches) -> np.ndarray:
    return pooled_embeddings(batches, plan.run)


def plan_agreement(plan, batches, reference: np.ndarray) -> dict:
    return embedding_agreement(reference, plan_embeddings(plan, batches))


def _score(agreement: dict, metric: str) -> float:
    return 100.0 * agreement["mean_cosine" if metric == "cosine" else "top1_retrieval_agreement"]


def encoder_layers(n_layers: int, attention: bool = True) -> list[str]:
    """Names the encoder search sets: every linear layer, and each layer's attention matmuls."""
    names = []
    for i in range(n_layers):
        p = layer_prefix(i)
        names += [f"{p}.{n}" for n in LINEARS[:3]]
        names += [f"{p}.{ATTENTION}"] if attention else []
        names += [f"{p}.{n}" for n in LINEARS[3:]]
    return names


def search_encoder(model, batches, reference: np.ndarray | None = None, *, candidates=("fp32", "w8a8", "w4a8-g128"),
                   metric: str = "cosine", algorithm: str = "coordinate", objective: str = "aiq", lam: float = 0.5,
                   max_drop: float | None = 1.0, attention: bool = True, machine: Machine | None = None,
                   seq: int = 128, cache_path=None, progress: bool = True):
    """Search per-layer precisions of a BERT-style encoder (mixq.planner.search's algorithms on the
    encoder's layers). Accuracy: 100 x `metric` agreement with the FP32 `reference` embeddings
    of `batches` (computed if not given). AI and roofline latency are those of `seq`-token
    sequences at batch 1. Attention matmuls take fp32 or w8a8 only. The word embeddings follow
    the config default (fp32 here). Returns the algorithm's SearchResult; `best` is a layer ->
    precision map for compile_encoder(model, {"default": "fp32", "layers": best})."""
    from .model_search import _algorithm, solve

    algorithm_fn = _algorithm(algorithm)
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    candidates = tuple(candidates)
    if reference is None:
        reference = reference_embeddings(model, batches)
    layers = encoder_layers(len(model.encoder.layer), attention)
    attention_ok = [c for c in candidates if parse_precision(c).for_kernel_set("attention") == parse_precision(c)]
    allowed = {n: attention_ok for n in layers if n.endswith(ATTENTION)}

    def evaluate(config: dict) -> Evaluation:
        plan = compile_encoder(model, {"default": "fp32", "layers": config})
        totals = model_totals(encoder_costs(plan.spec, 1, seq, machine))
        return Evaluation(accuracy=_score(plan_agreement(plan, batches, reference), metric), ai=float(totals["ai"]),
                          latency_s=float(totals["predicted_s"]))

    data = hashlib.sha256(b"".join(b[1].tobytes() + b[2].tobytes() for b in batches)).hexdigest()[:16]
    problem = Problem(layers=layers, candidates=list(candidates), evaluate=evaluate, allowed=allowed)
    return solve(problem, model, [list(candidates), metric, seq, attention, data], algorithm_fn, objective=objective,
                 lam=lam, max_drop=max_drop, cache_path=cache_path, progress=progress)
