"""CNN plans: capture (torch.fx) -> graph -> calibrate -> lower(config) -> pack -> Plan; oracle."""
from .plan import Plan

__all__ = ["Plan", "compile"]


def __getattr__(name):
    if name == "compile":  # imported lazily: compile needs torch, loading a plan does not
        from .compile import compile

        return compile
    raise AttributeError(name)
