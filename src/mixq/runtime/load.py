"""load_plan: a plan file -> the Plan or EncoderPlan it holds."""
from __future__ import annotations

from .plan_file import PlanFileError, read_plan


def load_plan(path):
    """Loads a plan file written by Plan.save or EncoderPlan.save (checks its header, version and
    checksum, then validates the spec against its arrays: the file is untrusted input); returns a
    Plan, an EncoderPlan or a DecoderPlan. Any problem is a PlanFileError."""
    spec, stored, meta = read_plan(path)
    try:
        if spec.get("kind") == "decoder":
            from .decoder import DecoderPlan

            return DecoderPlan(spec, stored, meta)
        if spec.get("kind") == "encoder":
            from .encoder import EncoderPlan

            return EncoderPlan(spec, stored, meta)
        from .cnn import Plan

        return Plan(spec, stored, meta)
    except PlanFileError as e:
        raise PlanFileError(f"{path}: {e}") from e
    except (KeyError, TypeError, ValueError, IndexError, OverflowError, RecursionError) as e:
        # The validators should catch everything first; the core's own checks are the backstop.
        raise PlanFileError(f"{path}: invalid plan: {type(e).__name__}: {e}") from e
