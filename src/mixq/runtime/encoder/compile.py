"""compile_encoder: a BERT-style torch encoder -> EncoderPlan (capture, calibration, lower)."""
from __future__ import annotations

import time

from ...quant import QuantConfig
from .capture import capture_encoder, input_ranges
from .lower import lower_encoder
from .plan import EncoderPlan


def compile_encoder(model, config=None, calibration=None, *, smooth_alpha: float = 0.5) -> EncoderPlan:
    """A BERT-style torch encoder (mixq.models.BertModel or the same structure) -> EncoderPlan.

    config: per-layer precision (None = fp32; see the module doc for the layer names).
    int8 activations take dynamic per-token scales. calibration (optional): batches of token ids
    (dicts with input_ids/attention_mask, (ids, mask) pairs or text_study batches) whose
    per-channel input ranges smooth the int8-activation linears (SmoothQuant, strength
    smooth_alpha in [0, 1]; measured on all-MiniLM-L6-v2 w8a8: top-1 retrieval agreement
    93 % -> 96 %)."""
    t0 = time.perf_counter()
    cfg = QuantConfig.from_any(config)  # a bad config fails before the capture
    if not 0.0 <= smooth_alpha <= 1.0:
        raise ValueError(f"smooth_alpha must be in [0, 1], got {smooth_alpha}")
    spec, params = capture_encoder(model)
    input_max = None if calibration is None else input_ranges(model, calibration)
    lowered, stored = lower_encoder(spec, params, cfg, input_max, smooth_alpha)
    meta = dict(config=cfg.to_dict(), smoothed=input_max is not None, smooth_alpha=smooth_alpha,
                compile_seconds=round(time.perf_counter() - t0, 3))
    return EncoderPlan(lowered, stored, meta)
