"""OpenVINO peers of the model benchmarks: ov-fp32 and ov-int8, from the same ONNX export ORT runs.

ov-int8 is OpenVINO's own post-training recipe: nncf.quantize on the OpenVINO model (default
preset: symmetric int8 activations, per-channel int8 weights, with the transformer model type
for encoders), calibrated on the same batches as the other static quantizers of the benchmark.
That is chosen over compiling ORT's QDQ model because the encoders' ORT int8 is dynamic
quantization (no QDQ model to read), and each peer is best shown with its own recipe.

Compiled for the CPU with INFERENCE_NUM_THREADS = the benchmark's threads, one stream, the
latency hint (one request at a time, like every other impl) and f32 inference precision (the
CPU plugin would otherwise pick bf16 on CPUs with AMX).
"""
from __future__ import annotations

import time

import numpy as np

from .peers import peers

IMPLS = ("ov-fp32", "ov-int8")


def cpu_config(threads: int) -> dict:
    return {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32"}


def constant_bytes(model) -> int:
    """Bytes of every Constant of an OpenVINO model: its weights, scales and zero points."""
    return int(sum(op.get_byte_size() for op in model.get_ops() if op.get_type_name() == "Constant"))


class OvRunner:
    """One compiled model per input shape (OpenVINO runs a static shape fastest), compiled at
    first use; past `max_static` shapes (the sentence-agreement pass feeds many) one compile with
    the model's own dynamic axes serves the rest. Takes the one input array, or a feed dict."""

    def __init__(self, core, model, threads: int, input_names, max_static: int = 2):
        self.core, self.model, self.threads = core, model, threads
        self.names, self.max_static = list(input_names), max_static
        self.compiled, self.dynamic = {}, None

    def _request(self, feed: dict):
        key = tuple((k, v.shape) for k, v in feed.items())
        if key in self.compiled:
            return self.compiled[key]
        if len(self.compiled) < self.max_static:
            model = self.model.clone()
            model.reshape({k: list(v.shape) for k, v in feed.items()})
            req = self.core.compile_model(model, "CPU", cpu_config(self.threads)).create_infer_request()
            self.compiled[key] = req
            return req
        if self.dynamic is None:
            self.dynamic = self.core.compile_model(self.model, "CPU", cpu_config(self.threads)).create_infer_request()
        return self.dynamic

    def __call__(self, x):
        feed = {self.names[0]: x} if isinstance(x, np.ndarray) else {k: x[k] for k in self.names}
        req = self._request(feed)
        req.infer(feed)
        return req.get_output_tensor(0).data.copy()


class OvPeers:
    """ov-fp32 and ov-int8 runners from the ONNX file at `onnx_path` (either may be missing, with
    the reason in `skipped`). `calibration`: the calibration inputs (arrays or feed dicts) the
    other static quantizers get; `transformer` selects nncf's transformer model type."""

    def __init__(self, onnx_path: str, calibration, threads: int, input_names, log,
                 transformer: bool = False):
        self.runners, self.weight_bytes, self.skipped = {}, {}, {}
        ov = peers(verbose=False).get("openvino")
        if ov is None or onnx_path is None:
            why = ("openvino not installed (pip install .[bench])" if ov is None
                   else "no ONNX export to read (onnx / onnxruntime not installed)")
            for impl in IMPLS:
                self.skipped[impl] = why
            return
        core = ov.Core()
        t0 = time.perf_counter()
        model = ov.convert_model(onnx_path)
        self._add("ov-fp32", core, model, threads, input_names)
        log(f"  ov-fp32: ov.convert_model of the ONNX export in {time.perf_counter() - t0:.1f} s")
        try:
            import nncf
        except Exception as e:
            self.skipped["ov-int8"] = f"nncf not available ({type(e).__name__}: {e})"
            return
        t0 = time.perf_counter()
        try:
            items = list(calibration)
            kw = {"model_type": nncf.ModelType.TRANSFORMER} if transformer else {}
            qmodel = nncf.quantize(model, nncf.Dataset(items), subset_size=len(items), **kw)
        except Exception as e:  # a quantizer failure must not take the fp32 row with it
            self.skipped["ov-int8"] = f"nncf.quantize failed: {type(e).__name__}: {e}"
            return
        log(f"  ov-int8: nncf.quantize on {len(items)} calibration batches in {time.perf_counter() - t0:.1f} s")
        self._add("ov-int8", core, qmodel, threads, input_names)

    def _add(self, impl, core, model, threads, input_names) -> None:
        self.weight_bytes[impl] = constant_bytes(model)
        self.runners[impl] = OvRunner(core, model, threads, input_names)

