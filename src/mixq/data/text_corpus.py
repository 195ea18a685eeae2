"""The English text the shipped decoder is trained and scored on: every prose fortune of Debian's
``fortunes`` (and ``fortunes-min``) packages, split into training and held-out documents.

The fortunes come in a fixed hash order (:mod:`mixq.data.sentences`); every 20th one is held
out, so the split is deterministic for a package version and mixes all topics. A document is one
fortune; the training stream joins documents with the end-of-text token.
"""
from __future__ import annotations

from .sentences import sentences

__all__ = ["HELDOUT_EVERY", "fortune_documents"]

HELDOUT_EVERY = 20


def fortune_documents(split: str, root=None) -> list[str]:
    """``split`` is "train" or "heldout"; raises DatasetNotFoundError without the package."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    docs = sentences(None, min_words=1, max_words=100_000, root=root)
    held = split == "heldout"
    return [d for i, d in enumerate(docs) if (i % HELDOUT_EVERY == 0) == held]
