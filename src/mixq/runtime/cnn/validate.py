"""Checks a CNN plan spec and its stored arrays before anything reaches the core.

A plan file is untrusted input (anyone can edit its JSON and recompute the CRC): every key, type,
tensor, op geometry and array is checked against the others and against sane bounds here, so the
core only ever sees plans whose ops read and write inside their tensors. Every failure is a
`PlanFileError` naming the op (or tensor) and the field.
"""
from __future__ import annotations

import math

import numpy as np

from ...ops.packed_weight import FORMATS, PackedWeight
from ..plan_file import PlanFileError

MAX_ELEMENTS = 1 << 28  # per-sample elements of one tensor (1 GiB as float32)
KINDS = ("conv", "depthwise", "add", "concat", "pool", "convert", "act")
CONV_MODES = ("float", "int8", "weight_only")
N_ACTS = 4  # silu, hardswish, sigmoid, clamp (runtime.cnn.lower.ACT_KIND)
# The packed formats each conv mode runs.
MODE_FORMATS = {"float": ("f32_x32", "bf16_x32c2"), "int8": ("s8_x32c4", "u4_x32c4", "u2_x32c4"),
                 "weight_only": ("u4_x32c4", "u2_x32c4")}


def _fail(where: str, field: str, problem: str):
    raise PlanFileError(f"{where}: {field} {problem}")


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _seq(v, n=None) -> bool:
    return isinstance(v, (list, tuple)) and (n is None or len(v) == n)


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _get(d: dict, key: str, where: str, check, what: str):
    if key not in d:
        _fail(where, key, "is missing")
    v = d[key]
    if not check(v):
        _fail(where, key, f"must be {what}, got {v!r:.80}")
    return v


def _pair(op: dict, key: str, where: str, least: int) -> tuple[int, int]:
    v = _get(op, key, where, lambda v: _seq(v, 2) and all(map(_int, v)),
             "a pair of integers")
    if min(v) < least or max(v) > MAX_ELEMENTS:
        _fail(where, key, f"must be in [{least}, {MAX_ELEMENTS}], got {v}")
    return v[0], v[1]


def _window(op: dict, where: str, in_hw, pool: bool) -> tuple[int, int]:
    """Output (H, W) of a convolution or pooling window; checks kernel, stride, dilation, padding."""
    k, s, d = _pair(op, "kernel", where, 1), _pair(op, "stride", where, 1), _pair(op, "dilation", where, 1)
    p = _pair(op, "padding", where, 0)
    out = []
    # A conv may pad past its kernel (torch allows it); its padded input is bounded like a tensor.
    if not pool and (in_hw[0] + 2 * p[0]) * (in_hw[1] + 2 * p[1]) > MAX_ELEMENTS:
        _fail(where, "padding", f"{p} makes the padded input larger than {MAX_ELEMENTS} pixels")
    for i in range(2):
        span = d[i] * (k[i] - 1)
        # torch's limit: pooling pads at most half the kernel (no window lies wholly in padding).
        if pool and p[i] > k[i] // 2:
            _fail(where, "padding", f"{p} exceeds half the kernel ({k[i] // 2}) on axis {i}")
        if span + 1 > in_hw[i] + 2 * p[i]:
            _fail(where, "kernel", f"{k} (dilation {d}) does not fit the padded input {in_hw} + 2 * {p}")
        out.append((in_hw[i] + 2 * p[i] - span - 1) // s[i] + 1)
    return out[0], out[1]


def _array(stored: dict, key, where: str, field: str, dtype: str, shape=None) -> np.ndarray:
    if not isinstance(key, str):
        _fail(where, field, f"must name a stored array, got {key!r:.80}")
    if key not in stored:
        _fail(where, field, f"names array {key!r}, which the file does not hold")
    a = stored[key]
    if a.dtype != np.dtype(dtype):
        _fail(where, field, f"array {key!r} must be {dtype}, got {a.dtype}")
    if shape is not None and tuple(a.shape) != tuple(shape):
        _fail(where, field, f"array {key!r} must have shape {tuple(shape)}, got {tuple(a.shape)}")
    if a.dtype == np.float32 and not np.isfinite(a).all():
        _fail(where, field, f"array {key!r} holds NaN or Inf")
    return a


def _tensor(t, i: int) -> None:
    where = f"tensor {i}"
    if not isinstance(t, dict):
        _fail(where, "entry", "must be an object")
    shape = _get(t, "shape", where, lambda v: _seq(v, 3) and all(map(_int, v)),
                 "three integers (H, W, C)")
    if min(shape) < 1 or math.prod(shape) > MAX_ELEMENTS:
        _fail(where, "shape", f"{shape} must be positive with at most {MAX_ELEMENTS} elements")
    dtype = _get(t, "dtype", where, lambda v: v in ("float32", "uint8"), "float32 or uint8")
    scale = _get(t, "scale", where, _num, "a number")
    if not (math.isfinite(scale) and np.float32(scale) > 0):
        _fail(where, "scale", f"must be finite and > 0, got {scale}")
    zp = _get(t, "zero_point", where, _int, "an integer")
    if dtype == "uint8" and not 0 <= zp <= 255:
        _fail(where, "zero_point", f"must be in [0, 255] for uint8, got {zp}")
    if dtype == "float32" and zp != 0:
        _fail(where, "zero_point", f"must be 0 for float32, got {zp}")


def _packed(stored: dict, key: str, where: str, mode: str, shape: tuple[int, int], label: str, needs: str) -> None:
    """A stored PackedWeight (array `key`) of `shape` [N, K] in a format that `mode` runs; `label`
    names it in errors (e.g. "group 0 "), `needs` what wants that shape."""
    blob = _array(stored, key, where, "weight", "uint8")
    try:
        if blob.ndim != 1:
            raise ValueError("not 1-D")
        fmt, n, k = PackedWeight.header_shape(blob)
    except ValueError:
        _fail(where, "weight", "is too short to be a PackedWeight")
    if (n, k) != shape:
        _fail(where, "weight", f"{label}is [{n}, {k}], {needs} needs [{shape[0]}, {shape[1]}]")
    if FORMATS.get(fmt) not in MODE_FORMATS[mode]:
        _fail(where, "weight", f"{label}has format {fmt}, which mode {mode!r} cannot run")


def validate_cnn_plan(spec, stored: dict) -> None:
    """Raises PlanFileError on the first inconsistency of a CNN plan spec with itself or its arrays."""
    from ...quant import parse_precision

    if not isinstance(spec, dict):
        _fail("spec", "document", "must be an object")
    tensors = _get(spec, "tensors", "spec", lambda v: _seq(v) and v, "a non-empty list")
    ops = _get(spec, "ops", "spec", lambda v: _seq(v) and v, "a non-empty list")
    for i, t in enumerate(tensors):
        _tensor(t, i)
    n = len(tensors)
    in_id = _get(spec, "input", "spec", lambda v: _int(v) and 0 <= v < n, f"a tensor id in [0, {n})")
    out_id = _get(spec, "output", "spec", lambda v: _int(v) and 0 <= v < n, f"a tensor id in [0, {n})")
    c, h, w = _get(spec, "input_shape", "spec", lambda v: _seq(v, 3) and all(map(_int, v)),
                   "three integers (C, H, W)")
    if list(tensors[in_id]["shape"]) != [h, w, c] or tensors[in_id]["dtype"] != "float32":
        _fail("spec", "input_shape", f"[{c}, {h}, {w}] disagrees with input tensor {in_id} "
                                     f"{tensors[in_id]['shape']} {tensors[in_id]['dtype']}")
    _get(spec, "output_layout", "spec", lambda v: v in ("nchw", "flat"), "'nchw' or 'flat'")

    computed = {in_id}
    for j, op in enumerate(ops):
        if not isinstance(op, dict):
            _fail(f"op {j}", "entry", "must be an object")
        name = _get(op, "name", f"op {j}", lambda v: isinstance(v, str), "a string")
        kind = _get(op, "kind", f"op {j} {name!r}", lambda v: v in KINDS, f"one of {KINDS}")
        where = f"op {j} {name!r} ({kind})"
        ins = _get(op, "inputs", where, lambda v: _seq(v) and v and all(map(_int, v)),
                   "a non-empty list of tensor ids")
        out = _get(op, "output", where, _int, "a tensor id")
        for t in list(ins) + [out]:
            if not 0 <= t < n:
                _fail(where, "inputs/output", f"tensor id {t} is out of range [0, {n})")
        for t in ins:
            if t not in computed:
                _fail(where, "inputs", f"tensor {t} is not computed before this op")
        if out in computed:
            _fail(where, "output", f"tensor {out} is written twice (or is the plan input)")
        computed.add(out)
        lo, hi = op.get("lo", -math.inf), op.get("hi", math.inf)
        if not (_num(lo) and _num(hi) and lo <= hi):
            _fail(where, "lo/hi", f"must be numbers with lo <= hi, got {lo!r:.40}, {hi!r:.40}")
        ti, to = tensors[ins[0]], tensors[out]
        (ih, iw, ic), (oh, ow, oc) = ti["shape"], to["shape"]
        ins = list(ins)
        n_in = {"add": 2}.get(kind)
        if kind == "conv":
            n_in = (1, 2)
        elif kind in ("depthwise", "pool", "convert", "act"):
            n_in = 1
        if n_in is not None and len(ins) not in (n_in if isinstance(n_in, tuple) else (n_in,)):
            _fail(where, "inputs", f"has {len(ins)} tensors, {kind} takes {n_in}")

        def shape_is(got, what="output shape"):
            if list(got) != [oh, ow, oc]:
                _fail(where, what, f"[{oh}, {ow}, {oc}] differs from the recomputed {list(got)}")

        if kind in ("conv", "depthwise"):
            prec = _get(op, "precision", where, lambda v: isinstance(v, str), "a precision name")
            try:
                entry = parse_precision(prec).entry
            except (ValueError, KeyError, TypeError) as e:
                _fail(where, "precision", f"{prec!r} is not a precision: {e}")
            if "bias" in op:
                _array(stored, op["bias"], where, "bias", "float32", (oc,))
        if kind == "conv":
            mode = _get(op, "mode", where, lambda v: v in CONV_MODES, f"one of {CONV_MODES}")
            if mode != entry.core_mode:
                _fail(where, "mode", f"{mode!r} is not the mode of precision {prec!r} ({entry.core_mode!r})")
            if (ti["dtype"] == "uint8") != (mode == "int8"):
                _fail(where, "inputs", f"mode {mode!r} cannot read a {ti['dtype']} tensor")
            groups = _get(op, "groups", where, lambda v: _int(v) and v >= 1, "an integer >= 1")
            flat = _get(op, "flatten_input", where, lambda v: isinstance(v, bool), "true or false")
            if flat:
                if groups != 1 or [_pair(op, k, where, 0) for k in ("kernel", "stride", "padding", "dilation")] \
                        != [(1, 1), (1, 1), (0, 0), (1, 1)]:
                    _fail(where, "flatten_input", "a linear layer needs kernel, stride, dilation 1, padding 0, groups 1")
                shape_is((1, 1, oc))
                k_depth = ih * iw * ic
            else:
                if ic % groups or oc % groups:
                    _fail(where, "groups", f"{groups} does not divide the channels {ic} -> {oc}")
                shape_is(_window(op, where, (ih, iw), pool=False) + (oc,))
                kh, kw = op["kernel"]
                k_depth = kh * kw * (ic // groups)
            if len(ins) == 2 and list(tensors[ins[1]]["shape"]) != list(to["shape"]):
                _fail(where, "inputs", f"residual tensor {ins[1]} {tensors[ins[1]]['shape']} differs from the output")
            weight = _get(op, "weight", where, lambda v: isinstance(v, str), "an array name prefix")
            if f"{weight}.g{groups}" in stored:
                _fail(where, "weight", f"has more than groups={groups} packed weights")
            for g in range(groups):
                _packed(stored, f"{weight}.g{g}", where, mode, (oc // groups, k_depth), f"group {g} ", "the op")
        elif kind == "depthwise":
            if ic != oc:
                _fail(where, "output shape", f"depthwise keeps channels: {ic} -> {oc}")
            shape_is(_window(op, where, (ih, iw), pool=False) + (oc,))
            kh, kw = op["kernel"]
            weight = _get(op, "weight", where, lambda v: isinstance(v, str), "an array name prefix")
            if entry.quantized_weights:
                if ti["dtype"] != "uint8":
                    _fail(where, "inputs", "an int8 depthwise conv reads uint8")
                _array(stored, weight + ".codes", where, "weight", "int8", (kh, kw, ic))
                scale = _array(stored, weight + ".scale", where, "weight", "float32", (ic,))
                if not (scale > 0).all():
                    _fail(where, "weight", "scales must be > 0")
            else:
                if ti["dtype"] != "float32" or to["dtype"] != "float32":
                    _fail(where, "inputs", "an fp32 depthwise conv reads and writes float32")
                _array(stored, weight, where, "weight", "float32", (kh, kw, ic))
        elif kind == "pool":
            for key in ("is_max", "count_include_pad"):
                _get(op, key, where, lambda v: isinstance(v, bool), "true or false")
            if ti["dtype"] != to["dtype"]:
                _fail(where, "output", "pooling keeps the dtype")
            if op["is_max"] and to["dtype"] == "uint8" and (ti["scale"], ti["zero_point"]) != (to["scale"], to["zero_point"]):
                _fail(where, "output", "uint8 max pooling keeps its input's quantization")
            shape_is(_window(op, where, (ih, iw), pool=True) + (ic,))
        elif kind == "add":
            for t in ins:
                if list(tensors[t]["shape"]) != list(to["shape"]) or tensors[t]["dtype"] != to["dtype"]:
                    _fail(where, "inputs", f"tensor {t} differs from the output in shape or dtype")
        elif kind == "concat":
            for t in ins:
                if list(tensors[t]["shape"][:2]) != list(to["shape"][:2]) or tensors[t]["dtype"] != to["dtype"]:
                    _fail(where, "inputs", f"tensor {t} differs from the output in H, W or dtype")
            shape_is((oh, ow, sum(tensors[t]["shape"][2] for t in ins)))
        elif kind == "convert":
            if ti["dtype"] == to["dtype"]:
                _fail(where, "output", "a convert changes the dtype")
            if list(ti["shape"]) != list(to["shape"]):
                _fail(where, "output shape", f"{to['shape']} differs from the input {ti['shape']}")
        elif kind == "act":
            _get(op, "act", where, lambda v: _int(v) and 0 <= v < N_ACTS, f"an integer in [0, {N_ACTS})")
            if ti["dtype"] != to["dtype"] or list(ti["shape"]) != list(to["shape"]):
                _fail(where, "output", "an activation keeps shape and dtype")
    if out_id not in computed or out_id == in_id:
        _fail("spec", "output", f"tensor {out_id} is not computed by any op")
