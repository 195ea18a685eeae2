"""mixq.compile: a PyTorch model, an ONNX file or a torch.export program -> a quantized
inference Plan run by the native core."""
from __future__ import annotations

import copy
import sys
import time
import warnings
from pathlib import Path

import numpy as np

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

    def __init__(self, model, example_input=None, calibration=None, *, observer: str = "minmax",
                 progress: bool = True, **observer_kw):
        self.model_name, self.graph, self.gm, self.fixed_qparams = capture_model(model, example_input)
        self.example_input = example_input if example_input is not None else \
            np.zeros((1, *self.graph[self.graph.input].shape[1:]), np.float32)
        self.calibration = calibration
        self.observer, self.observer_kw, self.progress = observer, observer_kw, progress
        self._observers: dict | None = None
        self._packed: dict = {}
        self._noted_fallbacks = False

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
            # An already-quantized (QDQ) model's activation scales win over calibration.
            self._observers.update({name: FixedQParams(*q) for name, q in self.fixed_qparams.items()})
        return self._observers

    def detached(self, calibrated: bool = True) -> "ModelCompiler":
        """A copy that compiles without torch: no torch module, no calibration data, and each
        activation range kept as its observer's qparams (what lowering reads). What a search ships
        to other processes (mixq.ray): plain numpy and Python, picklable. ``calibrated=False``
        skips calibration for searches whose candidates never quantize activations. The copy
        starts with an empty packed-weight cache and prints nothing."""
        twin = copy.copy(self)
        frozen = {}
        if calibrated:
            frozen = {name: FixedQParams(*obs.qparams()) for name, obs in self.observers().items()}
        twin._observers = frozen
        twin.gm = twin.calibration = twin.example_input = None
        twin._packed, twin.progress = {}, False
        return twin

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
        fallbacks = {name: str(cfg.precision_of(name)) for name, p in layer_precisions(self.graph, cfg).items()
                     if str(p) != str(cfg.precision_of(name))}
        meta = dict(config=cfg.to_dict(), model=self.model_name, observer=self.observer if uses_ranges else None,
                    compile_seconds=round(time.perf_counter() - t0, 3), fallbacks=fallbacks)
        if fallbacks and self.progress and not self._noted_fallbacks:
            self._noted_fallbacks = True  # once: a search compiles hundreds of configs
            print(f"note: {len(fallbacks)} layer(s) run another precision than asked (depthwise convs have int8 "
                  "and fp32 kernels; a layer shallower than the group size runs smaller or per-channel groups); "
                  "plan.layers() lists them", file=sys.stderr)
        plan = Plan(spec.to_json(), stored, meta)
        plan.lowered = spec
        return plan


class FixedQParams:
    """An observer stand-in holding qparams read from the model (its QDQ pairs)."""

    def __init__(self, scale: float, zero_point: int):
        self.scale, self.zero_point = float(scale), int(zero_point)

    def qparams(self) -> tuple[float, int]:
        return self.scale, self.zero_point


MODEL_FILE_KINDS = {".onnx": "ONNX", ".pt2": "torch.export program"}


def capture_model(model, example_input):
    """(model name, graph, fx GraphModule or None, fixed qparams) for any model mixq compiles:
    a torch.nn.Module, an ONNX file (path, bytes or onnx.ModelProto) or a torch.export program
    (a .pt2 path or an ExportedProgram)."""
    if isinstance(model, (str, Path)):
        path = Path(model)
        if path.suffix.lower() not in MODEL_FILE_KINDS:
            raise ValueError(f"{path}: unknown model file type {path.suffix!r}; mixq reads "
                             + ", ".join(f"{k} ({v})" for k, v in MODEL_FILE_KINDS.items()))
        if path.suffix.lower() == ".pt2":
            from .export_frontend import load_exported

            model = load_exported(path)
        else:
            from .onnx_frontend import capture_onnx

            graph, fixed, _ = capture_onnx(path, example_input)
            return path.stem, graph, None, fixed
    if isinstance(model, (bytes, bytearray)) or type(model).__name__ == "ModelProto":
        from .onnx_frontend import capture_onnx

        graph, fixed, proto = capture_onnx(model, example_input)
        return proto.graph.name or "onnx", graph, None, fixed
    if type(model).__name__ == "ExportedProgram":
        from .export_frontend import exported_to_onnx
        from .onnx_frontend import capture_onnx

        graph, fixed, _ = capture_onnx(exported_to_onnx(model, example_input), example_input)
        return "exported", graph, None, fixed
    if example_input is None:
        raise ValueError("example_input (an NCHW batch) is needed to capture a torch model")
    graph, gm = capture(model, example_input)
    return type(model).__name__, graph, gm, {}


def compile(model, example_input=None, config=None, calibration=None, *, observer: str = "minmax",
            progress: bool = True, **observer_kw) -> Plan:
    """Compile `model` for inputs shaped like `example_input` (NCHW; any batch size runs later).

    model: a torch.nn.Module; a path to an ONNX file (".onnx") or a torch.export program
        (".pt2", from torch.export.save); ONNX bytes or an onnx.ModelProto; an ExportedProgram.
    example_input: an NCHW batch (torch tensor or numpy array; its batch size does not matter);
        optional for model files (their input shape at batch 1).

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
