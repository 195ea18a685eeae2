"""Decode GEMV: y = x @ W.T with a float32 x of M = 1 row (M = 4 and 8 in a small-M section),
W of N x K = 4096 x 4096 and 11008 x 4096, for mixq's weight formats and every installed peer.

What is measured. Decoding an LLM runs every layer once per token with one activation row, so
the time of a layer is the time to stream its weights from DRAM: this path is memory-bound
and the figure of merit is the weight bandwidth achieved (weight bytes per layer / time per
layer) against the DRAM read bandwidth of this machine, measured in the same run.

Why the cycling. One 4096 x 4096 int4 matrix is 8 MB and even its fp32 copy (64 MB) would
partly stay in the 32 MB L3 between calls: timing one matrix in a loop measures the cache,
not DRAM. Each impl therefore owns a set of distinct weight matrices (24 of 4096 x 4096 and 8
of 11008 x 4096; fewer with --quick) and every timed call runs the *next* matrix of its set,
like the next layer of a model. A set always holds at least 8x the L3 size in bytes in that
impl's own format (4x with --quick). The contract asks >= 4x, but the L3 is not strictly LRU
and at 4x a few lines survive a cycle: measured for mixq w4-g128 4096^2 with sets of
1x/2x/4x/8x/16x L3: 66/42/35-37/34/33.5 GB/s. Compact formats get extra copies, packed again
from the same float matrices into separate buffers (distinct memory is what defeats the
cache, not distinct values).
One "call" = one layer. Every impl of a case holds its set at once and the impls are timed in
interleaved rounds (harness.timing.time_interleaved: each round gives every impl a block of ~50 ms
of calls, the block's first call untimed, in rotated order, for >= ROUNDS rounds and >= 4 s; at
these shapes every set cycles at least twice). Between two blocks of one impl the others stream
their own sets, so each call finds its matrix out of cache. This VM's
bandwidth is mostly steady (31-38 GB/s at 2 threads) but now and then jumps to ~60 GB/s for a
few seconds, and timed one after another the impls' ratios depended on which of them met the
jump (W4-g128 / MatMulNBits at 4096^2: 1.10x and 1.68x in two runs of one build). We report
the median time per layer.

The DRAM read bandwidth is measured right before and right after each case's timing
(mixq.measure_bandwidth() if mixq has it, else the numpy estimate of harness/machine.py); "% DRAM"
is taken against the median of all these measurements (also the JSON "dram_read_gbs"). A case
whose measurement before it is > 15% off the median is marked "*" (the machine changed around it). The CPU time other
processes used while a case was timed is measured too (/proc/stat minus our own); a case with
> 0.2 cores of it is marked "!".

Impls (names per ARCHITECTURE.md "Benchmarks: the contract"):
  torch-fp32            torch.nn.functional.linear
  torch-dynint8         torch.ao.quantization.quantize_dynamic(nn.Linear, qint8): per-tensor
                        int8 weights, activations quantized per call
  ort-fp32              ONNX MatMul with W.T as initializer
  ort-matmulnbits-4b-b32/-b128   com.microsoft MatMulNBits, bits=4, block 32/128,
                        accuracy_level=4 (int8 activations), symmetric: no zero points
  mixq-fp32, mixq-w8a8, mixq-w4a8-g32, mixq-w4a8-g128, mixq-w4a32-g128 / mixq-w4a16-g128
                        (weight-only, fp32 / bf16 activations), mixq-w2a8-g64
ORT runs one session per weight matrix, made by harness.onnx_export.ort_session (idle intra-op
threads do not spin). Checked for this benchmark: spinning on was slower (each session's
pool spins while the next session runs), a global thread pool was no faster.
Weight bytes per layer: mixq PackedWeight.nbytes (codes + scales + zero points + sums); the
peers' weight bytes as given to them (codes + scales + zero points; torch's per-tensor
scale/zero point are 8 bytes). ORT and fbgemm repack at load time; their internal layouts
are not counted.

Every output is checked once per impl and M (first and last matrix of the set, outside the
timing) against float64 references before it is timed, so a wrong answer is never timed:
  - against the original float weights: tight for fp32, a loose quantization-error bound
    for quantized formats (TOL_FLOAT);
  - for quantized formats also against the weights the format stands for (TOL_DEQUANT, only
    int8 activation rounding left): for ORT MatMulNBits the numpy dequantization of the very
    blobs we built (a layout check), for mixq the round-to-nearest codes of the float weights
    under the PackedWeight's own scales and zero points.
A mixq format the core does not support yet is skipped with its error printed.

Run:  python bench/gemv.py [--quick] [--json [PATH]] [--threads N] [--repeats R]
"""
from __future__ import annotations

import argparse
import gc
import math
import statistics
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from harness.cli import start
from harness.log import progress
from harness.machine import dram_probe
from harness.onnx_export import ort_session
from harness.peers import peers
from harness.report import Results, round_range_text, write_results
from harness.timing import time_interleaved

SHAPES = [(4096, 4096), (11008, 4096)]  # (N, K) = (out_features, in_features)
N_MATRICES = {(4096, 4096): 24, (11008, 4096): 8}  # distinct float matrices per shape
N_MATRICES_QUICK = {(4096, 4096): 4, (11008, 4096): 2}
M_MAIN, M_SMALL = 1, (4, 8)
CACHE_MULTIPLE = 8        # every impl's set of matrices holds >= 8x the L3 size in bytes
CACHE_MULTIPLE_QUICK = 4  # >= 4x (the contract's minimum) with --quick, where packing dominates
DEFAULT_L3 = 32 << 20

# (impl, pack_weights kwargs, matmul kwargs); consecutive impls with the same pack kwargs
# share one set of packed weights (w4a32-g128 and w4a16-g128 read the w4-g128 packs).
MIXQ_IMPLS = [
    ("mixq-fp32", {"bits": 32}, {}),
    ("mixq-w8a8", {"bits": 8, "symmetric": True}, {}),
    ("mixq-w4a8-g32", {"bits": 4, "group_size": 32, "symmetric": True}, {}),
    ("mixq-w4a8-g128", {"bits": 4, "group_size": 128, "symmetric": True}, {}),
    ("mixq-w4a32-g128", {"bits": 4, "group_size": 128, "symmetric": True}, {"act": "fp32"}),
    ("mixq-w4a16-g128", {"bits": 4, "group_size": 128, "symmetric": True}, {"act": "bf16"}),
    ("mixq-w2a8-g64", {"bits": 2, "group_size": 64, "symmetric": True}, {}),
]
PEER_IMPLS = ["torch-fp32", "torch-dynint8", "ort-fp32",
              "ort-matmulnbits-4b-b32", "ort-matmulnbits-4b-b128"]
ALL_IMPLS = PEER_IMPLS + [name for name, _, _ in MIXQ_IMPLS]

# Relative Frobenius error ||y - ref|| / ||ref|| allowed, random normal weights and x.
# TOL_FLOAT: against the ORIGINAL float weights, so the bound is the weight quantization error
# (+ int8 activation rounding), loose enough for any sane rounding choice. Measured: w8 0.01,
# w4-g128 0.10, w4-g32 0.09; symmetric 2-bit round-to-nearest with scale = max|w| (mixq's
# rule: codes -1/0/+1 in use) 0.70. An uncorrelated (wrong) answer gives >= 1.0.
# TOL_DEQUANT: against the weights the format stands for; only the rounding of the activations
# to 8 bits remains (measured ~0.005-0.01), so a single wrong group or block shows.
TOL_FP32 = 1e-4
TOL_FLOAT = {32: TOL_FP32, 16: 2e-2, 8: 0.02, 4: 0.15, 2: 0.85}
TOL_TORCH_DYNINT8 = 0.05     # per-tensor int8 weights
TOL_DEQUANT = 0.02

MIXQ_UNSUPPORTED = (TypeError, ValueError, NotImplementedError)


def first_line(error) -> str:
    return (str(error).strip().splitlines() or [""])[0]


def case_name(m, n, k):
    return f"gemv M={m} N={n} K={k}"


# ---------------------------------------------------------------- data and references
class CaseData:
    """The float32 master weights of one shape, the activations x per M, the float64
    reference x @ W.T of the masters (exact(j, m), shared by every impl) and the least number
    of bytes a set of matrices must hold (min_set_bytes)."""

    def __init__(self, n, k, n_matrices, ms, rng, l3_bytes, cache_multiple):
        self.n, self.k = n, k
        self.l3_bytes, self.min_set_bytes = l3_bytes, cache_multiple * l3_bytes
        self.masters = []
        for j in range(n_matrices):
            progress(f"[gemv] N={n} K={k}: generating weights {j + 1}/{n_matrices}")
            self.masters.append(rng.standard_normal((n, k), dtype=np.float32))
        progress(f"[gemv] N={n} K={k}: {n_matrices} float32 weight matrices", done=True)
        self.x = {m: rng.standard_normal((m, k), dtype=np.float32) for m in ms}
        self.exact = self.reference(lambda j: self.master(j).astype(np.float64))

    def master(self, j):
        return self.masters[j % len(self.masters)]

    def reference(self, weights64):
        """reference(j, m) = x[m] @ weights64(j).T in float64; weights64(j) is built once per
        j, at the first request, and the results for every M are kept."""
        cache = {}

        def reference(j, m):
            if j not in cache:
                w = weights64(j)
                cache[j] = {mm: x.astype(np.float64) @ w.T for mm, x in self.x.items()}
            return cache[j][m]
        return reference


def rel_error(out, ref) -> float:
    out = np.asarray(out, dtype=np.float64)
    if out.shape != ref.shape:
        raise AssertionError(f"output shape {out.shape}, expected {ref.shape}")
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))


# ---------------------------------------------------------------- a set of layers
@dataclass
class LayerSet:
    """One impl's distinct weight matrices, one callable per matrix: layers[j](inp) -> y.

    prepare turns the numpy x into what the layers take (done once, outside the timing);
    checks: (what, reference, tol): reference(j, m) is a float64 result that layer j must
    match within the relative error tol."""
    layers: list
    nbytes: int                       # weight bytes one layer streams
    checks: list
    prepare: Callable = field(default=lambda x: x)
    to_numpy: Callable = field(default=np.asarray)


def build_layers(label, data, make_one):
    """Call make_one(w) -> (layer, nbytes) for enough matrices: at least one per master and at
    least data.min_set_bytes in all (cycling through the masters, each call making a separate
    copy); returns (layers, nbytes per layer)."""
    layer, nbytes = make_one(data.masters[0])
    count = max(len(data.masters), math.ceil(data.min_set_bytes / nbytes))
    layers = [layer]
    for j in range(1, count):
        progress(f"[gemv] {label}: preparing weights {j + 1}/{count}")
        layers.append(make_one(data.master(j))[0])
    progress(f"[gemv] {label}: {count} matrices x {nbytes / 1e6:.1f} MB = "
             f"{count * nbytes / 1e6:.0f} MB ({count * nbytes / data.l3_bytes:.1f}x L3)", done=True)
    return layers, nbytes


# ---------------------------------------------------------------- ONNX models
def onnx_model(k, n, node, inits):
    """Single-node ONNX model y [M, n] = node(A [M, k], initializers)."""
    onnx = peers()["onnx"]
    h, TP = onnx.helper, onnx.TensorProto
    graph = h.make_graph([node], "gemv", [h.make_tensor_value_info("A", TP.FLOAT, ["M", k])],
                         [h.make_tensor_value_info("Y", TP.FLOAT, ["M", n])], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 21),
                                              h.make_opsetid("com.microsoft", 1)])


def onnx_matmul_fp32(w):
    """MatMul(A, B) with B = W.T [K, N] as an initializer."""
    onnx = peers()["onnx"]
    n, k = w.shape
    b = np.ascontiguousarray(w.T)
    init = onnx.helper.make_tensor("B", onnx.TensorProto.FLOAT, [k, n], b.tobytes(), raw=True)
    return onnx_model(k, n, onnx.helper.make_node("MatMul", ["A", "B"], ["Y"]), [init])


def quantize_4bit_blocks(w, block):
    """Symmetric 4-bit block quantization in the MatMulNBits layout.

    Per the com.microsoft MatMulNBits spec: B is uint8 [N, n_blocks, blob_size] with
    blob_size = block * bits / 8, the K axis of row n split into blocks; codes are packed
    low nibble first (byte i of a block holds elements 2i | 2i+1 << 4); scales are float
    [N * n_blocks] (row-major over (n, block)); without zero_points the zero point is
    2^(bits-1) = 8, so code = round(w / scale) + 8 with scale = max|w| / 7 per block."""
    n, k = w.shape
    if k % block:
        raise ValueError(f"K={k} is not a multiple of the block size {block}")
    wb = w.reshape(n, k // block, block)
    amax = np.abs(wb).max(axis=-1)
    scale = np.where(amax > 0, amax / 7.0, 1.0).astype(np.float32)
    q = (np.clip(np.rint(wb / scale[..., None]), -8, 7) + 8).astype(np.uint8)
    blob = q[..., 0::2] | (q[..., 1::2] << 4)
    return np.ascontiguousarray(blob), scale.reshape(-1)


def dequantize_4bit_blocks(blob, scale, n, k, block):
    """float64 [N, K] weights that MatMulNBits computes with (the reference for the layout check)."""
    q = np.stack([blob & 0x0F, blob >> 4], axis=-1).reshape(n, k // block, block)
    return ((q.astype(np.float64) - 8.0) * scale.reshape(n, k // block, 1)).reshape(n, k)


def onnx_matmulnbits_4bit(blob, scale, n, k, block):
    onnx = peers()["onnx"]
    h, TP = onnx.helper, onnx.TensorProto
    inits = [h.make_tensor("B", TP.UINT8, list(blob.shape), blob.tobytes(), raw=True),
             h.make_tensor("scales", TP.FLOAT, [scale.size], scale.tobytes(), raw=True)]
    node = h.make_node("MatMulNBits", ["A", "B", "scales"], ["Y"], domain="com.microsoft",
                       K=k, N=n, bits=4, block_size=block, accuracy_level=4)
    return onnx_model(k, n, node, inits)


# ---------------------------------------------------------------- peers
def torch_fp32(data, threads):
    torch = peers()["torch"]
    F = torch.nn.functional

    def make_one(w):
        tw = torch.tensor(w)  # a copy owned by this impl
        return (lambda t: F.linear(t, tw)), tw.numel() * 4

    layers, nbytes = build_layers("torch-fp32", data, make_one)
    return LayerSet(layers, nbytes, [("float weights", data.exact, TOL_FP32)],
                    torch.from_numpy, lambda y: y.numpy())


def torch_dynint8(data, threads):
    torch = peers()["torch"]
    nn = torch.nn

    def make_one(w):
        n, k = w.shape
        model = nn.Sequential(nn.Linear(k, n, bias=False))
        model[0].weight.data = torch.from_numpy(w)
        with warnings.catch_warnings():  # torch.ao eager quantization deprecation notice
            warnings.simplefilter("ignore")
            qlin = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8,
                                                          inplace=True)[0]
        return qlin, n * k + 8  # int8 codes + one scale and zero point (per tensor)

    layers, nbytes = build_layers("torch-dynint8", data, make_one)
    return LayerSet(layers, nbytes, [("float weights", data.exact, TOL_TORCH_DYNINT8)],
                    torch.from_numpy, lambda y: y.numpy())


def ort_layer(model, threads):
    sess = ort_session(model, threads)
    return lambda feed: sess.run(["Y"], feed)[0]


def ort_fp32(data, threads):
    def make_one(w):
        return ort_layer(onnx_matmul_fp32(w), threads), w.size * 4

    layers, nbytes = build_layers("ort-fp32", data, make_one)
    return LayerSet(layers, nbytes, [("float weights", data.exact, TOL_FP32)], lambda x: {"A": x})


def ort_matmulnbits(block):
    def build(data, threads):
        n, k = data.n, data.k

        def make_one(w):
            blob, scale = quantize_4bit_blocks(w, block)
            return (ort_layer(onnx_matmulnbits_4bit(blob, scale, n, k, block), threads),
                    blob.nbytes + scale.nbytes)

        def dequantized(j):  # re-quantizing the same master gives the same blobs
            blob, scale = quantize_4bit_blocks(data.master(j), block)
            return dequantize_4bit_blocks(blob, scale, n, k, block)

        layers, nbytes = build_layers(f"ort-matmulnbits-4b-b{block}", data, make_one)
        checks = [("its dequantized blocks", data.reference(dequantized), TOL_DEQUANT),
                  ("float weights", data.exact, TOL_FLOAT[4])]
        return LayerSet(layers, nbytes, checks, lambda x: {"A": x})
    return build


PEER_BUILDERS = {
    "torch-fp32": ("torch", torch_fp32),
    "torch-dynint8": ("torch", torch_dynint8),
    "ort-fp32": ("onnxruntime", ort_fp32),
    "ort-matmulnbits-4b-b32": ("onnxruntime", ort_matmulnbits(32)),
    "ort-matmulnbits-4b-b128": ("onnxruntime", ort_matmulnbits(128)),
}


# ---------------------------------------------------------------- mixq
def mixq_packs(impl, pack_kw, data):
    """(packed weights, nbytes) for one mixq format; raises if mixq cannot pack it yet."""
    mixq = peers()["mixq"]

    def make_one(w):
        pw = mixq.pack_weights(w, **pack_kw)
        return pw, pw.nbytes

    return build_layers(impl, data, make_one)


def mixq_dequantized(pw, w):
    """float64 [N, K] weights an int8/int4/int2 PackedWeight stands for: round-to-nearest codes
    of the float weights w under pw's own scales and zero points, then (code - zp) * scale.
    Independent of how mixq chose the scales (symmetric, asymmetric, clipping)."""
    n, k = w.shape
    scale = pw.scale.astype(np.float64).reshape(n, -1)     # [N] (int8) or [N, n_groups]
    groups = scale.shape[1]
    if pw.bits == 8:  # signed codes, zero point per channel (0 when symmetric)
        zp = np.zeros_like(scale) if pw.zero_point is None else pw.zero_point.reshape(n, 1)
        lo, hi = -128, 127
    else:             # unsigned codes, zero point per group
        zp, lo, hi = pw.zero_point.astype(np.float64).reshape(n, groups), 0, (1 << pw.bits) - 1
    if k % groups:
        raise ValueError(f"K={k} is not a whole number of {groups} groups")
    wg = w.astype(np.float64).reshape(n, groups, k // groups)
    s, z = scale[:, :, None], zp[:, :, None]
    codes = np.clip(np.rint(wg / s) + z, lo, hi)
    return ((codes - z) * s).reshape(n, k)


def mixq_layerset(packed, nbytes, pack_kw, mm_kw, data):
    mixq = peers()["mixq"]
    layers = [(lambda x, pw=pw: mixq.matmul(x, pw, **mm_kw)) for pw in packed]
    bits = pack_kw["bits"]
    checks = [("float weights", data.exact, TOL_FLOAT[bits])]
    if bits in (8, 4, 2):
        dequantized = data.reference(lambda j: mixq_dequantized(packed[j], data.master(j)))
        checks.insert(0, ("its dequantized weights", dequantized, TOL_DEQUANT))
    return LayerSet(layers, nbytes, checks)


# ---------------------------------------------------------------- verify and time
def verify(ls, data, m) -> str:
    """Raise AssertionError unless the first and last matrix of the set give the right y
    (the last one also catches a closure bound to the wrong matrix); returns the largest
    errors found, as text."""
    inp = ls.prepare(data.x[m])
    worst = {}
    for j in sorted({0, len(ls.layers) - 1}):
        out = ls.to_numpy(ls.layers[j](inp))
        for what, reference, tol in ls.checks:
            err = rel_error(out, reference(j, m))
            if not err <= tol:
                raise AssertionError(f"matrix {j}: relative error {err:.3g} > {tol} vs {what}")
            worst[what] = max(err, worst.get(what, 0.0))
    return ", ".join(f"{err:.2g} vs {what}" for what, err in worst.items())


def next_layer_fn(ls, x):
    """A call that runs the next matrix of the set on x (prepared once, outside the timing)."""
    inp = ls.prepare(x)
    layers, state = ls.layers, [0]

    def next_layer():
        i = state[0]
        state[0] = i + 1 if i + 1 < len(layers) else 0
        layers[i](inp)
    return next_layer


ROUNDS = 8  # interleaved rounds per case at least (3 with --quick)


def measure_case(results, cond, sets, data, ms, args):
    """Verify every impl's set at each M (a failing check drops that impl at that M), then time
    all of them in interleaved rounds; the DRAM bandwidth is measured just before and after."""
    for m in ms:
        case = case_name(m, data.n, data.k)
        fns, checked = {}, {}
        for impl, ls in sets.items():
            try:
                checked[impl] = verify(ls, data, m)
            except AssertionError as e:
                print(f"[gemv] {case} {impl}: WRONG RESULT, not timed: {e}")
                continue
            except Exception as e:  # e.g. mixq without this format/kwarg yet, a peer refusing
                print(f"[gemv] {case} {impl} skipped: {type(e).__name__}: {first_line(e)}")
                continue
            fns[impl] = next_layer_fn(ls, data.x[m])
        if not fns:
            continue
        dram = cond.measure_dram(case)
        progress(f"[gemv] {case}: timing {len(fns)} impls in interleaved rounds")
        rounds = argparse.Namespace(warmup=1, repeats=3 if args.quick else max(ROUNDS, args.repeats),
                                    min_time=1.0 if args.quick else 4.0)
        per_round = {}
        timed = time_interleaved(fns, rounds, per_round=per_round)
        cond.measure_dram()  # after, too: one more sample for the median
        cond.note_load(case, max(load for _, _, load in timed.values()))
        progress(f"[gemv] {case}: timed", done=True)
        for impl, (med, mn, _) in timed.items():
            ls = sets[impl]
            results.add(case, impl, med, mn, ops=2 * m * data.n * data.k, bytes=ls.nbytes, rounds=per_round.get(impl))
            print(f"[gemv] {case} {impl}: {med * 1e6:.0f} us/layer, {ls.nbytes / med / 1e9:.1f} GB/s "
                  f"(DRAM read {dram:.1f} GB/s before the case){cond.marks(case)}; checked: {checked[impl]}")


def build_peers(data, args) -> dict:
    """{impl: LayerSet} for every installed peer that accepts the shape."""
    p, sets = peers(), {}
    for impl, (needs, build) in PEER_BUILDERS.items():
        if p[needs] is None or (needs == "onnxruntime" and p["onnx"] is None):
            continue  # peers() already reported it missing
        try:
            sets[impl] = build(data, args.threads)
        except Exception as e:  # a peer rejecting the model: report, keep going
            print(f"[gemv] {impl} skipped: {type(e).__name__}: {first_line(e)}")
    return sets


def build_mixq(data) -> dict:
    """{impl: LayerSet} for every mixq format the core supports; impls with the same pack kwargs
    share one set of packed weights (w4a32-g128 and w4a16-g128 read the w4-g128 packs)."""
    if peers()["mixq"] is None:
        return {}
    packs, sets = {}, {}
    for impl, pack_kw, mm_kw in MIXQ_IMPLS:
        key = tuple(sorted(pack_kw.items()))
        if key not in packs:
            try:
                packs[key] = mixq_packs(impl, pack_kw, data)
            except MIXQ_UNSUPPORTED as e:
                print(f"[gemv] {impl} skipped: mixq cannot pack it ({type(e).__name__}: {first_line(e)})")
                packs[key] = None
        if packs[key] is not None:
            packed, nbytes = packs[key]
            sets[impl] = mixq_layerset(packed, nbytes, pack_kw, mm_kw, data)
    return sets


# ---------------------------------------------------------------- conditions per case
class Conditions:
    """What the machine was like around each timed case: the DRAM read bandwidth measured right
    before (harness.machine.dram_probe: mixq.measure_bandwidth() when mixq has it, else a numpy
    estimate, which streams 512 MB and so also flushes the L3) and the CPU other processes used
    during the timing."""

    UNUSUAL_DRAM = 0.15   # a bandwidth measurement this far off the median marks its case "*"
    BUSY_CORES = 0.2      # other processes using more than this during a case mark it "!"

    def __init__(self, threads):
        self.source, self._measure = dram_probe(threads)
        self.dram, self.others, self.samples = {}, {}, []

    def measure_dram(self, case=None) -> float:
        """Measures now; with a case, as that case's "before" figure."""
        gbs = self._measure()
        self.samples.append(gbs)
        if case is not None:
            self.dram[case] = gbs
        return gbs

    def note_load(self, case, cores):
        self.others[case] = cores

    def median_dram(self) -> float:
        return statistics.median(self.samples)

    def marks(self, case) -> str:
        text = ""
        if abs(self.dram[case] / self.median_dram() - 1) > self.UNUSUAL_DRAM:
            text += " *"
        if self.others.get(case, 0.0) > self.BUSY_CORES:
            text += f" ! {self.others[case]:.1f} cores"
        return text


# ---------------------------------------------------------------- report
def achieved_gbs(row) -> float:
    return row["bytes"] / row["median_s"] / 1e9


def print_case_table(results, cond, case):
    rows = [results.get(case, impl) for impl in ALL_IMPLS]
    rows = [r for r in rows if r is not None]
    if not rows:
        return
    base, dram = results.get(case, "torch-fp32"), cond.median_dram()
    print(f"\n{case}")
    head = (f"{'impl':23s} {'us/layer':>9s} {'min us':>8s} {'MB/layer':>9s} {'GB/s':>7s} "
            f"{'% DRAM':>7s} {'vs torch-fp32':>14s} {'DRAM GB/s before':>17s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        gbs = achieved_gbs(r)
        speed = f"{base['median_s'] / r['median_s']:.2f}x" if base else "-"
        print(f"{r['impl']:23s} {r['median_s'] * 1e6:9.0f} {r['min_s'] * 1e6:8.0f} "
              f"{r['bytes'] / 1e6:9.1f} {gbs:7.1f} {100 * gbs / dram:6.0f}% {speed:>14s} "
              f"{cond.dram[case]:17.1f}{cond.marks(case)}")


def speedup(results, case, fast, slow):
    a, b = results.get(case, fast), results.get(case, slow)
    return None if a is None or b is None else b["median_s"] / a["median_s"]


def print_targets(results, cond):
    """The issue's targets at M = 1, informational (the exit code stays 0)."""
    dram = cond.median_dram()
    print(f"\nTargets (informational; DRAM read bandwidth {dram:.1f} GB/s):")
    checks = [("mixq-w4a8-g128", "ort-matmulnbits-4b-b128", 1.25),
              ("mixq-w8a8", "torch-dynint8", 1.25),
              ("mixq-w2a8-g64", "mixq-w4a8-g128", 1.5)]
    for n, k in SHAPES:
        case = case_name(M_MAIN, n, k)
        for fast, slow, need in checks:
            s = speedup(results, case, fast, slow)
            label = f"N={n} K={k} {fast} vs {slow}"
            if s is None:
                print(f"  {label:55s} n/a (not measured)")
                continue
            ok = s >= need
            text = f"{s:.2f}x (need >= {need}x{round_range_text(results, case, fast, slow)})"
            if fast == "mixq-w4a8-g128":
                frac = achieved_gbs(results.get(case, fast)) / dram
                ok = ok and frac >= 0.85
                text += f", {100 * frac:.0f}% of DRAM read bandwidth (need >= 85%)"
            if cond.marks(case):
                text += "  (the case is marked: rerun)"
            print(f"  {label:55s} {'PASS' if ok else 'FAIL'}  {text}")


def print_conditions(results, cond):
    vals = cond.samples
    print(f"\nDRAM read bandwidth ({cond.source}): median {cond.median_dram():.1f} GB/s of {len(vals)} "
          f"measurements, before and after each case (range {min(vals):.1f}-{max(vals):.1f}).")
    print("GB/s = weight bytes per layer / median time per layer; % DRAM = GB/s / median bandwidth.")
    print(f"Marks: * the case's bandwidth measurement (before it) was > {100 * cond.UNUSUAL_DRAM:.0f}% off "
          f"the median; ! other processes used > {cond.BUSY_CORES} cores while it was timed. Rerun those.")
    over = [f"{r['impl']} ({r['case']})" for r in results.rows
            if achieved_gbs(r) > 1.05 * cond.median_dram()]
    if over:
        print(f"  note: {len(over)} row(s) beat the median bandwidth by > 5%: the estimate is low, or "
              f"the machine's bandwidth rose while they ran: {', '.join(over)}")


# ---------------------------------------------------------------- main
def main():
    args, p, machine = start(__doc__)
    l3 = (p["mixq"].cpu_info().get("l3_bytes") if p["mixq"] is not None else None) or DEFAULT_L3
    cond = Conditions(args.threads)
    print(f"[gemv] {machine['cpu']}, isa={machine['isa']}, threads={args.threads}, "
          f"L3 {l3 >> 20} MB; DRAM read {cond.measure_dram():.1f} GB/s now ({cond.source})")

    ms = (M_MAIN,) if args.quick else (M_MAIN,) + M_SMALL
    counts = N_MATRICES_QUICK if args.quick else N_MATRICES
    multiple = CACHE_MULTIPLE_QUICK if args.quick else CACHE_MULTIPLE
    rng = np.random.default_rng(0)
    results = Results()
    for n, k in SHAPES:
        data = CaseData(n, k, counts[(n, k)], ms, rng, l3, multiple)
        sets = {**build_peers(data, args), **build_mixq(data)}
        measure_case(results, cond, sets, data, ms, args)
        del sets
        del data
        gc.collect()
    if not results.rows:
        print("[gemv] nothing was measured")
        return

    print_conditions(results, cond)
    for m in ms:
        if m == M_SMALL[0]:
            print("\n--- small M (a few decode streams batched) ---")
        for n, k in SHAPES:
            print_case_table(results, cond, case_name(m, n, k))
    print_targets(results, cond)
    machine["dram_read_gbs"] = cond.median_dram()
    machine["dram_read_source"] = f"{cond.source}, median of {len(cond.samples)} (before and after each case)"
    write_results(args, "gemv", machine, results)


if __name__ == "__main__":
    main()
