"""Roofline: the measured machine model and the per-layer cost model (FLOPs, bytes, AI, time)."""
from .cost import OpCost, encoder_costs, model_ai, model_totals, plan_costs, weight_bytes
from .machine import Machine, machine
from .profile import Profile, profile, profile_plan

__all__ = ["Machine", "machine", "OpCost", "plan_costs", "encoder_costs", "model_ai", "model_totals", "weight_bytes", "Profile",
           "profile", "profile_plan"]
