"""The runtime: capture (torch.fx) -> graph -> lower(config) -> Plan; save/load; run.

Loading and running a saved plan needs numpy and mixq only; compiling needs torch.
"""
from .encoder import EncoderPlan, compile_encoder
from .plan import Plan, load_plan
from .plan_file import PlanFileError

__all__ = ["Plan", "EncoderPlan", "load_plan", "PlanFileError", "compile", "compile_encoder"]


def __getattr__(name):
    if name == "compile":  # imported lazily: compile needs torch, loading a plan does not
        from .compile import compile

        return compile
    raise AttributeError(name)
