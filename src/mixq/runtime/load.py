"""load_plan: a plan file -> the Plan or EncoderPlan it holds."""
from __future__ import annotations

from .plan_file import read_plan


def load_plan(path):
    """Loads a plan file written by Plan.save or EncoderPlan.save (checks its header, version and
    checksum); returns a Plan or an EncoderPlan."""
    spec, stored, meta = read_plan(path)
    if spec.get("kind") == "encoder":
        from .encoder import EncoderPlan

        return EncoderPlan(spec, stored, meta)
    from .cnn import Plan

    return Plan(spec, stored, meta)
