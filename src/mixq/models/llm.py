"""The shipped small decoder: a Llama-style model trained here on Debian's fortunes
(``python -m mixq.models.train_llm``), with its byte-level BPE tokenizer.

    >>> model, tok = load_llm()                       # LlamaForCausalLM (fp32), tokenizers.Tokenizer
    >>> ids = tok.encode("The best way to").ids

Files (in ``weights/llm/``): ``llm_fortunes.safetensors`` (bfloat16 weights, HF names),
``llm_fortunes.tokenizer.json``, ``llm_fortunes.json`` (config, held-out perplexity, training run).
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import CheckpointNotFoundError

__all__ = ["LLM_DIR", "LLM_NAME", "llm_metadata", "llm_tokenizer", "load_llm"]

LLM_DIR = Path(__file__).with_name("weights") / "llm"
LLM_NAME = "llm_fortunes"


def _file(suffix: str) -> Path:
    path = LLM_DIR / f"{LLM_NAME}{suffix}"
    if not path.is_file():
        raise CheckpointNotFoundError(f"{path} is missing: the package was installed without the shipped decoder "
                                      f"(re-create it with `python -m mixq.models.train_llm`)")
    return path


def llm_metadata() -> dict:
    return json.loads(_file(".json").read_text())


def llm_tokenizer():
    """The byte-level BPE tokenizer (tokenizers.Tokenizer); ``<|endoftext|>`` is id 0."""
    try:
        from tokenizers import Tokenizer
    except ImportError as e:
        raise ImportError("the shipped decoder's tokenizer needs the `tokenizers` package "
                          "(pip install 'mixq[text]')") from e
    return Tokenizer.from_file(str(_file(".tokenizer.json")))


def load_llm():
    """(LlamaForCausalLM in fp32 eval mode, tokenizer) of the shipped decoder."""
    import torch

    from .llama import LlamaConfig, LlamaForCausalLM
    from .registry import read_safetensors

    meta = llm_metadata()
    model = LlamaForCausalLM(LlamaConfig.from_dict(meta["config"]))
    state = {k: torch.from_numpy(v).float() for k, v in read_safetensors(_file(".safetensors")).items()}
    model.load_state_dict(state, strict=True)
    return model.eval(), llm_tokenizer()
