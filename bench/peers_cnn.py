"""Peers of the end-to-end CNN benchmark (bench/e2e.py): models, inputs and the non-mixq runners.

  prepare_model      a zoo model in eval mode with realistic BatchNorm statistics
  image_batches      inputs: smooth random "images" (224 px models) or Fashion-MNIST (ResNet-20)
  fp32_weight_bytes  4 x parameters after folding BatchNorm into the conv before it
  model_ops          2 x multiply-adds of the conv / linear layers for one input shape
  torch_runner       torch-fp32: the eval model under torch.inference_mode
  OrtPeers           ort-fp32 and ort-int8 sessions built from one ONNX export
  (ov-fp32 and ov-int8 come from the same export: harness/openvino_peer.py)

ONNX export uses torch's TorchScript exporter (``torch.onnx.export(..., dynamo=False)``): the
dynamo exporter, the default since torch 2.9, needs the ``onnxscript`` package, which the bench
extra does not install; the TorchScript one needs nothing beyond torch and onnx, and folds
BatchNorm into the convolutions of an eval model itself. The batch axis is dynamic, so one
export (and one int8 model) serves every batch size of a model.

ort-int8 is onnxruntime's own recipe for static quantization: quant_pre_process (symbolic shape
inference + ORT graph optimizations), then quantize_static in QDQ format with per-channel int8
weights and uint8 activations, MinMax-calibrated by a CalibrationDataReader over the same
calibration batches mixq gets. ORT fuses the QDQ pairs into QLinearConv etc. at session load.
"""
from __future__ import annotations

import os
import time

import numpy as np
import torch
from torch import nn

from harness import mixq_api
from harness.log import make_log
from harness.onnx_export import export_onnx as export_torchscript_onnx
from harness.onnx_export import ort_model_runner
from harness.peers import peers

INPUT_NAME, OUTPUT_NAME = "input", "logits"
log = make_log("e2e")


# ---------------------------------------------------------------- models and inputs
def _randomize_bn_affine(model: nn.Module, gen: torch.Generator) -> None:
    """Trained networks do not have gamma = 1, beta = 0 everywhere: draw them."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0.0, 0.2, generator=gen)


def calibrate_bn(model: nn.Module, batches) -> None:
    """Set every BatchNorm's running mean / variance to the statistics of `batches` (cumulative
    average, momentum=None), so that eval mode normalizes what the layer really sees: the
    running statistics are non-trivial and activation ranges stay like a trained network's."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for b in batches:
            model(torch.as_tensor(b))
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()


def prepare_model(name: str, seed: int = 0, bn_batches=None) -> tuple[nn.Module, str]:
    """A zoo model in eval mode; (model, description of its weights).

    A model with a shipped checkpoint (ResNet-20: Fashion-MNIST) loads it; the others get
    random weights (zoo init), random BatchNorm gamma/beta and running statistics measured on
    `bn_batches` (a list of input arrays).
    """
    registry = mixq_api.registry()
    spec = registry.info(name)
    if spec.has_checkpoint:
        return registry.get(name, pretrained=True).eval(), f"checkpoint {spec.checkpoint.name}"
    torch.manual_seed(seed)
    model = registry.get(name)
    gen = torch.Generator().manual_seed(seed)
    _randomize_bn_affine(model, gen)
    if bn_batches:
        calibrate_bn(model, bn_batches)
    n = sum(len(b) for b in bn_batches or [])
    return model.eval(), f"random weights, BN statistics from {n} images"


def smooth_images(n: int, shape, rng: np.random.Generator) -> np.ndarray:
    """float32 [n, C, H, W] with image-like spatial correlation (bilinear-upsampled coarse
    noise plus a little pixel noise), about zero mean and unit variance like normalized
    ImageNet inputs. White noise would give conv layers unrealistic activation statistics."""
    c, h, w = shape
    coarse = torch.from_numpy(rng.standard_normal((n, c, max(h // 16, 2), max(w // 16, 2)),
                                                  dtype=np.float32))
    x = nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    x = x / x.std() * 0.95 + 0.3 * torch.from_numpy(rng.standard_normal((n, c, h, w), dtype=np.float32))
    return np.ascontiguousarray(x.numpy(), dtype=np.float32)


class ImageSource:
    """Batches of model inputs. Fashion-MNIST test images (the shipped 2 000-image subset)
    for the 28 px Fashion-MNIST models, smooth random images otherwise. `take(n)` never hands
    out the same image twice (until the subset is exhausted, then it wraps around)."""

    def __init__(self, name: str, seed: int = 0):
        spec = mixq_api.registry().info(name)
        self.shape = spec.input_shape
        self.rng = np.random.default_rng(seed)
        self.real = None
        self.labels = None
        self.kind = "random smooth images"
        if spec.dataset == "fashion-mnist":
            try:
                images, labels = mixq_api.fashion_mnist("test-subset")
                order = self.rng.permutation(len(images))
                self.real, self.labels = mixq_api.preprocess(images[order]), labels[order]
                self.kind = "Fashion-MNIST test images"
            except Exception as e:  # no data: random inputs still time the same work
                log(f"{name}: Fashion-MNIST subset not available ({e}); using random images")
        self.pos = 0

    def take(self, n: int) -> np.ndarray:
        if self.real is None:
            return smooth_images(n, self.shape, self.rng)
        idx = (self.pos + np.arange(n)) % len(self.real)
        self.pos += n
        return np.ascontiguousarray(self.real[idx])

    def batches(self, count: int, size: int) -> list[np.ndarray]:
        return [self.take(size) for _ in range(count)]


# ---------------------------------------------------------------- sizes
_FOLDABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def fp32_weight_bytes(model: nn.Module) -> int:
    """4 bytes x the parameters an inference engine keeps after folding every BatchNorm that
    directly follows a conv / linear into it: that layer's weight plus a bias of out_channels
    (the folded BN's scale and shift disappear). Other parameters (a BN not after a conv, ...)
    count as they are. Found with torch.fx, so the 'directly follows' is the real graph edge."""
    gm = torch.fx.symbolic_trace(model)
    mods = dict(gm.named_modules())
    folded_bn, with_bias = set(), set()
    for node in gm.graph.nodes:
        if node.op != "call_module" or not isinstance(mods[node.target], _FOLDABLE):
            continue
        users = list(node.users)
        if (len(users) == 1 and users[0].op == "call_module"
                and isinstance(mods[users[0].target], _BN)):
            folded_bn.add(users[0].target)
            with_bias.add(node.target)
    count = 0
    for name, m in gm.named_modules():
        if name in folded_bn:
            continue
        if isinstance(m, _FOLDABLE):
            count += m.weight.numel()
            if m.bias is not None:
                count += m.bias.numel()
            elif name in with_bias:
                count += m.weight.shape[0]
        else:
            count += sum(p.numel() for p in m.parameters(recurse=False))
    return 4 * count


def model_ops(model: nn.Module, x: np.ndarray) -> int:
    """2 x multiply-adds of every conv and linear layer for input `x` (its batch included)."""
    macs = []

    def hook(m, inp, out):
        if isinstance(m, nn.Linear):
            macs.append(out.numel() * m.in_features)
        else:
            k = int(np.prod(m.kernel_size))
            macs.append(out.numel() * (m.in_channels // m.groups) * k)

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.inference_mode():
            model(torch.from_numpy(x))
    finally:
        for h in hs:
            h.remove()
    return 2 * sum(macs)


# ---------------------------------------------------------------- torch
def torch_runner(model: nn.Module):
    """torch-fp32: numpy NCHW float32 in, numpy out; threads set by harness.peers.set_threads."""
    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()
    return run


# ---------------------------------------------------------------- ONNX Runtime
def export_onnx(model: nn.Module, example: np.ndarray, path: str) -> None:
    """TorchScript-based export with a dynamic batch axis (see the module docstring)."""
    export_torchscript_onnx(model, (torch.from_numpy(example),), path, [INPUT_NAME], [OUTPUT_NAME],
                            {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})


def quantize_int8(fp32_path: str, out_path: str, calibration, workdir: str) -> None:
    """ORT static quantization: QDQ, per-channel int8 weights, uint8 activations, MinMax
    calibration on `calibration` (a list of input batches)."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, batches):
            self.batches = list(batches)
            self.it = iter(self.batches)

        def get_next(self):
            b = next(self.it, None)
            return None if b is None else {INPUT_NAME: b}

        def rewind(self):
            self.it = iter(self.batches)

    pre_path = os.path.join(workdir, "pre.onnx")
    t0 = time.perf_counter()
    log("  ort-int8: quant_pre_process (shape inference + graph optimization)")
    quant_pre_process(fp32_path, pre_path)
    log(f"  ort-int8: quantize_static QDQ per-channel u8s8, MinMax on {len(calibration)} batches "
        f"of {len(calibration[0])} ({time.perf_counter() - t0:.1f} s so far)")
    quantize_static(pre_path, out_path, Reader(calibration), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    log(f"  ort-int8: done in {time.perf_counter() - t0:.1f} s")


class OrtPeers:
    """ort-fp32 and ort-int8 sessions (either may be missing, with the reason in `skipped`).

    runners[impl] is a numpy -> numpy callable; weight_bytes[impl] the bytes of all the
    model's initializers (for int8: int8 weights + int32 biases + scales + zero points);
    initializer_types[impl] the same split by element type; fp32_path the ONNX export (the
    OpenVINO peers read it), None without onnx / onnxruntime."""

    def __init__(self, model: nn.Module, example: np.ndarray, calibration, threads: int,
                 workdir: str, int8: bool = True):
        self.runners, self.weight_bytes, self.initializer_types, self.skipped = {}, {}, {}, {}
        self.fp32_path = None
        p = peers(verbose=False)
        if p["onnxruntime"] is None or p["onnx"] is None:
            for impl in ("ort-fp32", "ort-int8"):
                self.skipped[impl] = "onnxruntime / onnx not installed"
            return
        fp32_path = os.path.join(workdir, "fp32.onnx")
        t0 = time.perf_counter()
        log("  ort-fp32: torch.onnx.export (TorchScript exporter, dynamic batch)")
        export_onnx(model, example, fp32_path)
        log(f"  ort-fp32: exported in {time.perf_counter() - t0:.1f} s")
        self.fp32_path = fp32_path
        self._add("ort-fp32", fp32_path, threads)
        if not int8:
            self.skipped["ort-int8"] = "not asked for"
            return
        int8_path = os.path.join(workdir, "int8.onnx")
        try:
            quantize_int8(fp32_path, int8_path, calibration, workdir)
        except Exception as e:  # a quantizer failure must not take the fp32 rows with it
            self.skipped["ort-int8"] = f"quantization failed: {type(e).__name__}: {e}"
            return
        self._add("ort-int8", int8_path, threads)

    def _add(self, impl: str, path: str, threads: int) -> None:
        run, types = ort_model_runner(path, threads, [INPUT_NAME], single_input=True)
        self.initializer_types[impl] = types
        self.weight_bytes[impl] = sum(types.values())
        self.runners[impl] = run
