"""WordPiece tokenization of sentences for BERT encoders (the ``tokenizers`` package; no torch).

The tokenizer.json shipped with all-MiniLM-L6-v2 has padding to a fixed 128 tokens and
truncation at 128 switched on; we switch both off at load and pad ourselves, to the longest
sequence of each batch, so a short batch does not run 128 positions.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["SentenceTokenizer"]


class SentenceTokenizer:
    """``tok(texts, max_length=128)`` -> {"input_ids", "attention_mask", "token_type_ids"}:
    numpy int64 [batch, longest], each row ``[CLS] tokens [SEP]`` then padding (id
    ``pad_id``, mask 0). ``max_length`` counts [CLS] and [SEP]; longer texts are truncated."""

    def __init__(self, path: str | os.PathLike, model_max_length: int = 512):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise ImportError("SentenceTokenizer needs the 'tokenizers' package: "
                              "pip install tokenizers (or pip install 'mixq[text]')") from None
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"tokenizer file not found: {self.path}")
        self._tok = Tokenizer.from_file(str(self.path))
        self._tok.no_padding()
        self._tok.no_truncation()
        self._max_length = None  # truncation currently set on self._tok
        self.model_max_length = int(model_max_length)
        self.pad_id = self._tok.token_to_id("[PAD]")
        if self.pad_id is None:
            raise ValueError(f"{self.path}: vocabulary has no [PAD] token")

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def _check(self, texts, max_length) -> list[str]:
        if isinstance(texts, str):
            texts = [texts]  # one sentence: a batch of one (not a list of characters)
        try:
            texts = list(texts)
        except TypeError:
            raise TypeError(f"texts must be a string or a list of strings, got "
                            f"{type(texts).__name__}") from None
        if not texts:
            raise ValueError("texts is empty: give at least one string")
        bad = [(i, type(t).__name__) for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            i, kind = bad[0]
            raise TypeError(f"texts must all be strings: texts[{i}] is a {kind} "
                            f"({len(bad)} non-string item(s))")
        if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)):
            raise TypeError(f"max_length must be an int, got {type(max_length).__name__}")
        if not 2 <= max_length <= self.model_max_length:
            raise ValueError(f"max_length must be in 2..{self.model_max_length} ([CLS] and [SEP] "
                             f"included; the model has {self.model_max_length} positions), got {max_length}")
        return texts

    def __call__(self, texts, max_length: int = 128) -> dict[str, np.ndarray]:
        texts = self._check(texts, max_length)
        if self._max_length != max_length:
            self._tok.enable_truncation(max_length=int(max_length))
            self._max_length = max_length
        encs = self._tok.encode_batch(texts)
        width = max(len(e.ids) for e in encs)
        out = {"input_ids": np.full((len(encs), width), self.pad_id, np.int64),
               "attention_mask": np.zeros((len(encs), width), np.int64),
               "token_type_ids": np.zeros((len(encs), width), np.int64)}
        for row, e in enumerate(encs):
            n = len(e.ids)
            out["input_ids"][row, :n] = e.ids
            out["attention_mask"][row, :n] = 1
            out["token_type_ids"][row, :n] = e.type_ids
        return out

    def __repr__(self) -> str:
        return f"SentenceTokenizer({str(self.path)!r}, vocab_size={self.vocab_size})"
