"""The planner: machine model (roofline), per-layer cost, precision search (AIQ and latency-aware),
studies, reports and the demo. Everything here needs torch for the model it plans, except the
cost model and reports."""
from .model_search import DEFAULT_CANDIDATES, search
from .text_study import search_encoder

__all__ = ["DEFAULT_CANDIDATES", "search", "search_encoder"]
