"""mixq.compile: a PyTorch model -> a quantized inference Plan run by the native core."""
from __future__ import annotations

import time
import warnings

from ..quant.config import QuantConfig
from .calibrate import calibrate
from .capture import capture
from .lower import layer_precisions, lower
from .pack import pack_spec_weights
from .plan import Plan


def compile(model, example_input, config=None, calibration=None, *, observer: str = "minmax",
            progress: bool = True, **observer_kw) -> Plan:
    """Compile `model` for inputs shaped like `example_input` (NCHW; any batch size runs later).

    config: per-layer precision (None = fp32; "w8a8"; "w4a8-g128"; {"default": ..., "layers":
        {name or pattern: precision}}; see mixq.quant.config). calibration: an iterable of NCHW
        batches (or (input, label) pairs) to set activation ranges of int8 layers; observer:
        "minmax" | "percentile" | "mse".
    The returned plan keeps its lowered spec (float weights) as `plan.lowered` for the
    fake-quant oracle (mixq.runtime.oracle.simulate); it is not saved.
    """
    t0 = time.perf_counter()
    cfg = QuantConfig.from_any(config)
    graph, gm = capture(model, example_input)
    needs_ranges = any(p.int8_activations for p in layer_precisions(graph, cfg).values())
    observers = {}
    if needs_ranges:
        if calibration is None:
            warnings.warn("no calibration data given: activation ranges come from the example input alone",
                          stacklevel=2)
            calibration = [example_input]
        observers = calibrate(graph, gm, calibration, observer, progress, **observer_kw)
    spec = lower(graph, cfg, observers)
    stored = pack_spec_weights(spec)
    meta = dict(config=cfg.to_dict(), model=type(model).__name__, observer=observer if needs_ranges else None,
                compile_seconds=round(time.perf_counter() - t0, 3))
    plan = Plan(spec.to_json(), stored, meta)
    plan.lowered = spec
    return plan
