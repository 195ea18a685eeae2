"""The runtimes: a model -> a plan of integer and float ops run by the core, saved to one file.

``cnn``: PyTorch CNNs (torch.fx capture). ``encoder``: BERT-style transformer encoders.
``decoder``: Llama-style decoders (prefill and KV-cache decode).
Loading and running a saved plan needs numpy and mixq only; compiling needs torch.
"""
from .cnn import Plan
from .decoder import DecoderPlan, Sampling, compile_decoder
from .encoder import EncoderPlan, compile_encoder
from .errors import UnsupportedModelError
from .load import load_plan
from .plan_file import PlanFileError

__all__ = ["Plan", "EncoderPlan", "DecoderPlan", "Sampling", "compile_decoder", "load_plan", "PlanFileError", "UnsupportedModelError", "compile", "compile_encoder"]


def __getattr__(name):
    if name == "compile":  # imported lazily: compile needs torch, loading a plan does not
        from .cnn.compile import compile

        return compile
    raise AttributeError(name)
