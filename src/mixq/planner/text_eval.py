"""Accuracy of sentence embeddings against a reference (e.g. quantized vs fp32): numpy only.

    >>> embedding_agreement(ref, cand)   # both [n_sentences, dim]
    {'mean_cosine': 0.998, 'min_cosine': 0.991, 'top1_retrieval_agreement': 0.97, 'n': 1000}

* cosine: per sentence, cos(ref_i, cand_i); mean and min over sentences.
* top-1 retrieval agreement: per sentence i, its nearest neighbour j != i by cosine among the
  reference embeddings and among the candidate embeddings; the share of sentences where the
  two neighbours are the same sentence. It asks what a search engine would see: the same
  best match.
"""
from __future__ import annotations

import numpy as np

__all__ = ["embedding_agreement", "top1_retrieval_agreement"]

_BLOCK = 1024  # rows of the similarity matrix at a time: memory stays O(block x n)


def _unit_rows(x, what: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{what}: expected [n_sentences, dim] embeddings, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise ValueError(f"{what}: expected real numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        bad = np.flatnonzero(~np.all(np.isfinite(a), axis=1))
        raise ValueError(f"{what}: {len(bad)} row(s) hold NaN or inf (first: row {bad[0]})")
    norms = np.linalg.norm(a, axis=1)
    if np.any(norms == 0):
        raise ValueError(f"{what}: row {int(np.flatnonzero(norms == 0)[0])} is all zeros "
                         "(cosine undefined)")
    return a / norms[:, None]


def _checked_pair(reference, candidate) -> tuple[np.ndarray, np.ndarray]:
    ref, cand = _unit_rows(reference, "reference"), _unit_rows(candidate, "candidate")
    if ref.shape != cand.shape:
        raise ValueError(f"reference {ref.shape} and candidate {cand.shape} differ in shape")
    if len(ref) == 0:
        raise ValueError("no embeddings (0 rows)")
    return ref, cand


def _nearest_other(unit: np.ndarray) -> np.ndarray:
    """For each row i, argmax_{j != i} cos(row_i, row_j) (ties: the lowest j)."""
    n = len(unit)
    out = np.empty(n, np.int64)
    for start in range(0, n, _BLOCK):
        sims = unit[start:start + _BLOCK] @ unit.T
        rows = np.arange(len(sims))
        sims[rows, start + rows] = -np.inf  # not itself
        out[start:start + _BLOCK] = sims.argmax(1)
    return out


def _retrieval(ref: np.ndarray, cand: np.ndarray) -> float:
    if len(ref) < 2:
        raise ValueError("top-1 retrieval needs at least 2 sentences")
    return float(np.mean(_nearest_other(ref) == _nearest_other(cand)))


def top1_retrieval_agreement(reference, candidate) -> float:
    """Share of sentences whose nearest other sentence (by cosine) is the same in both."""
    return _retrieval(*_checked_pair(reference, candidate))


def embedding_agreement(reference, candidate) -> dict:
    """{"mean_cosine", "min_cosine", "top1_retrieval_agreement", "n"} of candidate vs reference
    ([n_sentences, dim] each, n >= 2). ValueError on other shapes, NaN / inf or zero rows."""
    ref, cand = _checked_pair(reference, candidate)
    cos = np.sum(ref * cand, axis=1)
    return {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()),
            "top1_retrieval_agreement": _retrieval(ref, cand), "n": len(ref)}
