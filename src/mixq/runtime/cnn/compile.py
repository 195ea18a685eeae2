"""mixq.compile: a PyTorch model -> a quantized inference Plan run by the native core."""
from __future__ import annotations

import time
import warnings

from ...quant import QuantConfig
from .calibrate import calibrate
from .capture import capture
from .lower import PlanSpec, layer_precisions, lower
from .pack import pack_spec_weights
from .plan import Plan


class ModelCompiler:
    """Captures a model once and calibrates it once (lazily, when a config first needs int8
    activations), then compiles it at any precision config cheaply: what a precision search does
    hundreds of times. Packed weights are cached per (layer, precision)."""

    def __init__(self, model, example_input, calibration=None, *, observer: str = "minmax",
                 progress: bool = True, **observer_kw):
        self.model_name = type(model).__name__
        self.graph, self.gm = capture(model, example_input)
        self.example_input = example_input
        self.calibration = calibration
        self.observer, self.observer_kw, self.progress = observer, observer_kw, progress
        self._observers: dict | None = None
        self._packed: dict = {}

    def layer_names(self) -> list[str]:
        """Names of the layers a config can set (conv and linear modules), in execution order."""
        return [n.name for n in self.graph.layers()]

    def observers(self) -> dict:
        if self._observers is None:
            batches = self.calibration
            if batches is None:
                warnings.warn("no calibration data given: activation ranges come from the example input alone",
                              stacklevel=3)
                batches = [self.example_input]
            self._observers = calibrate(self.graph, self.gm, batches, self.observer, self.progress,
                                        **self.observer_kw)
        return self._observers

    def spec(self, config) -> PlanSpec:
        """The lowered plan spec at `config` (float weights; nothing packed)."""
        cfg = QuantConfig.from_any(config)
        needs_ranges = any(p.int8_activations for p in layer_precisions(self.graph, cfg).values())
        return lower(self.graph, cfg, self.observers() if needs_ranges else {})

    def plan(self, config) -> Plan:
        t0 = time.perf_counter()
        cfg = QuantConfig.from_any(config)
        spec = self.spec(cfg)
        stored = pack_spec_weights(spec, self._packed)
        uses_ranges = any(t["dtype"] == "uint8" for t in spec.tensors)
        meta = dict(config=cfg.to_dict(), model=self.model_name, observer=self.observer if uses_ranges else None,
                    compile_seconds=round(time.perf_counter() - t0, 3))
        plan = Plan(spec.to_json(), stored, meta)
        plan.lowered = spec
        return plan


def compile(model, example_input, config=None, calibration=None, *, observer: str = "minmax",
            progress: bool = True, **observer_kw) -> Plan:
    """Compile `model` for inputs shaped like `example_input` (NCHW; any batch size runs later).

    config: per-layer precision (None = fp32; "w8a8"; "w4a8-g128"; {"default": ..., "layers":
        {name or pattern: precision}}; see mixq.quant.config). calibration: an iterable of NCHW
        batches (or (input, label) pairs) to set activation ranges of int8 layers; observer:
        "minmax" | "percentile" | "mse".
    The returned plan keeps its lowered spec (float weights) as `plan.lowered` for the
    fake-quant oracle (mixq.runtime.cnn.oracle.simulate); it is not saved.
    """
    QuantConfig.from_any(config)  # a bad config fails before the (slower) capture
    return ModelCompiler(model, example_input, calibration, observer=observer, progress=progress,
                         **observer_kw).plan(config)
