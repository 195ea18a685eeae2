"""Transformer encoder plans (BERT-style): capture -> lower(config) -> EncoderPlan; oracle."""
from .compile import compile_encoder
from .layout import ATTENTION, LINEARS, WORD_EMBEDDINGS, layer_names, layer_prefix
from .plan import EncoderPlan

__all__ = ["EncoderPlan", "compile_encoder", "ATTENTION", "LINEARS", "WORD_EMBEDDINGS", "layer_names", "layer_prefix"]
