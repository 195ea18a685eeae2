"""End-to-end CNN inference: mixq plans vs torch, onnxruntime and OpenVINO (fp32 and int8), same inputs and threads.

Cases (model, input, batch):
  resnet50      ResNet-50 v1.5, 3x224x224, batch 1 and 8 (--quick: 1)   random weights
  mobilenet_v2  MobileNetV2,    3x224x224, batch 1 and 8 (--quick: 1)   random weights
  resnet20      ResNet-20,      1x28x28,   batch 1 and 64               Fashion-MNIST checkpoint
Random-weight models get random BatchNorm gamma/beta and running statistics measured on 16
images, so activation ranges (and therefore quantization) look like a trained network's. The
224 px inputs are smooth random images; ResNet-20 gets Fashion-MNIST test images (its registry
input is 28x28, one channel). Calibration batches (the same for ORT, OpenVINO and mixq) are
other images.

Impls (one process, same input array, same thread count; medians after warm-up, timed in
interleaved rounds: every impl once per round, so a slow spell of the machine hits all alike):
  torch-fp32       the eval model under torch.inference_mode
  ort-fp32         torch.onnx.export(dynamo=False) -> onnxruntime, all graph optimizations
  ort-int8         quant_pre_process + quantize_static (QDQ, per-channel int8 weights, uint8
                   activations, MinMax calibration) -> onnxruntime
  ov-fp32          the same ONNX export -> openvino.convert_model -> CPU plugin (f32, one
                   stream, latency hint, INFERENCE_NUM_THREADS = threads), static input shape
  ov-int8          nncf.quantize of that OpenVINO model on the same calibration batches as
                   ort-int8 (default preset: symmetric int8 activations, per-channel weights)
  mixq-fp32, mixq-w8a8, mixq-w4a8-g128 (and mixq-w7a8 where it is this CPU's default int8:
                   CPUs without VNNI; the targets read that row)
                   plan = mixq.compile(model, example, config=..., calibration=[...]);
                   plan.run(x) -- rows are skipped with "mixq runtime not available" while
                   mixq.compile is missing or raises NotImplementedError
Peer construction lives in bench/peers_cnn.py and bench/harness/openvino_peer.py; the ONNX
files go to a temporary directory. A peer that is not installed is reported and its rows skipped.

Every impl's output is compared with torch-fp32 on the timed input before it is timed: "rel err"
= ||y - y_torch|| / ||y_torch|| and "top1" = share of images with the same arg-max class. A
wrong shape or a non-finite output is not timed; a large error is flagged with "!".
Weight bytes: torch-fp32 its parameters; ORT all initializers of the model it runs (int8 weights
+ int32 biases + scales + zero points for ort-int8); OpenVINO all constants of its model; mixq
plan.weight_bytes. "% fp32" is against 4 x the parameters left after folding BatchNorm into the
convolutions (weights + biases).
JSON rows: ops = 2 x conv/linear multiply-adds of the batch, bytes = the weight bytes.

Run:  python bench/e2e.py [--quick] [--json [PATH]] [--threads N] [--repeats R]
                          [--models resnet50,mobilenet_v2,resnet20]
"""
from __future__ import annotations

import copy
import tempfile
import time

import numpy as np

from harness import mixq_api
from harness.model_bench import ModelBench, add_peer_runners, print_not_measured
from harness.openvino_peer import OvPeers
from harness.peers import MixqUnavailable
from harness.report import Results, model_table_rows, print_columns, ratio, round_range_text
from harness.timing import BUSY
from peers_cnn import (INPUT_NAME, ImageSource, OrtPeers, fp32_weight_bytes, log, model_ops, prepare_model,
                       torch_runner)

# name: (label, batch sizes, batch sizes with --quick)
MODELS = {
    "resnet50": ("ResNet50v1.5", (1, 8), (1,)),
    "mobilenet_v2": ("MobileNetV2", (1, 8), (1,)),
    "resnet20": ("ResNet-20", (1, 64), (1, 64)),
}
PEER_IMPLS = ["torch-fp32", "ort-fp32", "ort-int8", "ov-fp32", "ov-int8"]
INT8 = mixq_api.int8_impl()  # the int8 row the targets read: this CPU's default int8 precision
MIXQ_CONFIGS = {"mixq-fp32": "fp32", "mixq-w8a8": "w8a8", INT8: INT8.removeprefix("mixq-"), "mixq-w4a8-g128": "w4a8-g128"}
IMPLS = PEER_IMPLS + list(MIXQ_CONFIGS)
BN_BATCHES = (2, 8)  # images that set the BatchNorm statistics of random-weight models
CALIBRATION = {False: (8, 4), True: (4, 2)}  # quick -> (batches, images per batch)


# ---------------------------------------------------------------- mixq
def compile_mixq(mixq, model, example, calibration, config):
    """The one call into mixq's model compiler: (runner, weight bytes).

    `model` is the torch module (eval mode; a copy, so a compiler that folds or fuses in place
    cannot change the peers' model), `example` a torch tensor of the case's input,
    `calibration` a list of torch tensors, `config` a precision name."""
    import torch

    if mixq is None:
        raise MixqUnavailable("mixq is not importable", permanent=True)
    try:
        compile_fn = mixq.compile
    except AttributeError:
        raise MixqUnavailable("mixq.compile does not exist", permanent=True) from None
    try:
        plan = compile_fn(copy.deepcopy(model), torch.from_numpy(example), config=config,
                          calibration=[torch.from_numpy(b) for b in calibration])
    except NotImplementedError as e:
        raise MixqUnavailable(f"mixq.compile(config={config!r}) raised NotImplementedError: {e}") from None
    return plan.run, int(plan.weight_bytes)


class MixqPlans:
    """Plans per config for one model, compiled with the first batch size's input and reused
    for the others; recompiled for a batch size the plan does not accept."""

    def __init__(self, mixq, model, calibration, unavailable: str | None = None):
        self.mixq, self.model, self.calibration = mixq, model, calibration
        self.plans: dict[str, tuple] = {}
        self.unavailable = unavailable or (None if mixq is not None else "mixq is not importable")

    def runner(self, impl: str, x: np.ndarray):
        """(run, weight_bytes) for impl on input x, or None (the reason was printed)."""
        if self.unavailable:
            return None
        config = MIXQ_CONFIGS[impl]
        try:
            if impl in self.plans:
                run, wb = self.plans[impl]
                try:
                    out = np.asarray(run(x))
                    if out.shape[0] == x.shape[0]:
                        return run, wb
                except Exception:
                    pass
                log(f"  {impl}: plan does not take batch {x.shape[0]}; compiling again for it")
            t0 = time.perf_counter()
            self.plans[impl] = compile_mixq(self.mixq, self.model, x, self.calibration, config)
            log(f"  {impl}: mixq.compile(config={config!r}) in {time.perf_counter() - t0:.1f} s")
            return self.plans[impl]
        except MixqUnavailable as e:
            if e.permanent:
                self.unavailable = str(e)
            log(f"  {impl}: mixq runtime not available ({e}); skipping")
        except Exception as e:  # a compiler bug must not stop the peers' rows
            log(f"  {impl}: mixq.compile failed: {type(e).__name__}: {e}; skipping")
        return None


# ---------------------------------------------------------------- one model
def quality(out, ref) -> tuple[float, float]:
    out = np.asarray(out, dtype=np.float32)
    err = float(np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-30))
    return err, float(np.mean(out.argmax(1) == ref.argmax(1)))


def run_model(name, bench: ModelBench, mixq_state):
    args = bench.args
    label, batches, quick_batches = MODELS[name]
    batches = quick_batches if args.quick else batches
    t_model = time.perf_counter()
    src = ImageSource(name, seed=0)
    log(f"{label}: preparing model ({src.kind})")
    model, weights = prepare_model(name, seed=0, bn_batches=src.batches(*BN_BATCHES))
    inputs = {bs: src.take(bs) for bs in batches}
    calibration = src.batches(*CALIBRATION[args.quick])
    fp32_bytes = fp32_weight_bytes(model)
    torch_bytes = 4 * sum(q.numel() for q in model.parameters())
    c, h, w = src.shape
    log(f"{label}: {weights}; fp32 weights after BN folding {fp32_bytes / 1e6:.2f} MB")

    with tempfile.TemporaryDirectory(prefix="mixq-e2e-") as tmp:
        ort = OrtPeers(model, inputs[batches[0]], calibration, args.threads, tmp)
        ov = OvPeers(ort.fp32_path, calibration, args.threads, [INPUT_NAME], log)
    if "ort-int8" in ort.initializer_types:
        t = ort.initializer_types["ort-int8"]
        log(f"  ort-int8 initializers: int8 {t.get('INT8', 0) / 1e6:.2f} MB, int32 "
            f"{t.get('INT32', 0) / 1e6:.3f} MB, float {t.get('FLOAT', 0) / 1e6:.3f} MB")
    peer_runners = {"torch-fp32": (torch_runner(model), torch_bytes)}
    add_peer_runners(peer_runners, (ort, ov), log, bench.skipped)
    plans = MixqPlans(bench.peers["mixq"], model, calibration, mixq_state.get("gone"))

    for bs in batches:
        x = inputs[bs]
        runners = dict(peer_runners)
        for impl in MIXQ_CONFIGS:
            r = plans.runner(impl, x)
            if r is not None:
                runners[impl] = r
        if plans.unavailable:
            mixq_state["gone"] = plans.unavailable
        bench.time_case(f"{name} {c}x{h}x{w} bs{bs}", runners, x,
                        lambda out, ref: dict(zip(("err", "top1"), quality(out, ref))), model_ops(model, x),
                        {"fp32_bytes": fp32_bytes, "model": name, "bs": bs},
                        lambda q: f"rel err {q['err']:.2e}  top1 {100 * q['top1']:.0f}%")
    log(f"{label}: done in {time.perf_counter() - t_model:.1f} s")


# ---------------------------------------------------------------- report
def print_e2e_table(results: Results, info: dict) -> None:
    head = ["case", "impl", "median ms", "img/s", "weights MB", "% fp32", "rel err", "top1",
            "x ort-fp32", "x ort-int8"]
    rows = model_table_rows(results, info, IMPLS, lambda r, q, err_cell: [
        f"{q['bs'] / r['median_s']:.1f}", f"{r['bytes'] / 1e6:.2f}", f"{100 * r['bytes'] / q['fp32_bytes']:.1f}%",
        err_cell(q["err"]), f"{100 * q['top1']:.0f}%"], ratios_last=True)
    print("\nEnd-to-end inference (median of repeated runs; x = speed-up over that ORT row; "
          "rel err / top1 vs torch-fp32 on the same input;\n * = other processes used > "
          f"{BUSY} cores while the row was timed: rerun before trusting it)")
    print_columns(head, rows)


TARGETS = [  # (label, models, batch sizes or None for all, base impl, min speed-up)
    ("ResNet50 w8a8 vs ORT fp32", ["resnet50"], (1, 8), "ort-fp32", 2.5),
    ("MobileNetV2 w8a8 vs ORT fp32", ["mobilenet_v2"], (1,), "ort-fp32", 1.8),
    ("every w8a8 vs ORT int8", list(MODELS), None, "ort-int8", 1.5),
]
BYTE_TARGETS = [(INT8, 0.26), ("mixq-w4a8-g128", 0.14)]


def print_targets(results: Results, info: dict, mixq_note: str | None) -> None:
    print("\nTargets (informational):")
    cases = list(dict.fromkeys(r["case"] for r in results.rows))
    for label, models, sizes, base, need in TARGETS:
        for case in cases:
            q = info.get((case, base))
            if q is None or q["model"] not in models or (sizes and q["bs"] not in sizes):
                continue
            v = ratio(results, case, INT8, base)
            if v is None:
                print(f"  n/a   {label:30s} {case}: {INT8} not measured")
            else:
                print(f"  {'PASS' if v >= need else 'FAIL'}  {label:30s} {case}: {v:.2f}x (need >= {need}"
                      f"{round_range_text(results, case, INT8, base)})")
    for impl, limit in BYTE_TARGETS:
        seen = set()
        for case in cases:
            q = info.get((case, impl))
            if q is None or q["model"] in seen:
                continue
            seen.add(q["model"])
            share = results.get(case, impl)["bytes"] / q["fp32_bytes"]
            print(f"  {'PASS' if share <= limit else 'FAIL'}  {impl + ' weight bytes':30s} {q['model']}: "
                  f"{100 * share:.1f}% of fp32 (need <= {100 * limit:.0f}%)")
        if not seen:
            print(f"  n/a   {impl + ' weight bytes':30s} <= {100 * limit:.0f}% of fp32: not measured")
    if mixq_note:
        print(f"  (mixq runtime not available: {mixq_note})")


def main(argv=None):
    bench, mixq_state = ModelBench("e2e", __doc__, MODELS, argv), {}
    for name in bench.models:
        run_model(name, bench, mixq_state)
    print_e2e_table(bench.results, bench.info)
    print_not_measured(bench.skipped, bench.results)
    print_targets(bench.results, bench.info, mixq_state.get("gone"))
    bench.finish()


if __name__ == "__main__":
    main()
