"""Llama-style decoder plans: weights -> lower(config) -> DecoderPlan (prefill + KV-cache decode in the core)."""
from .compile import compile_decoder
from .layout import LM_HEAD, layer_prefix, linear_names
from .plan import DecoderPlan
from .sampling import Sampling

__all__ = ["DecoderPlan", "Sampling", "compile_decoder", "LM_HEAD", "layer_prefix", "linear_names"]
