"""A compiled inference plan: runs in the native core; saves to and loads from one file.

Only numpy and mixq are needed to load and run a plan (no torch).
"""
from __future__ import annotations

import re

import numpy as np

from ... import _core
from ...ops import PackedWeight
from ...quant import parse_precision, quantize
from .validate import validate_cnn_plan

_INF = float("inf")
_PACKED_KEY = re.compile(r"\.g\d+$")  # a PackedWeight's bytes (see runtime.cnn.pack)


def _act_table(kind: int, lo: float, hi: float, qin: tuple[float, int], qout: tuple[float, int]) -> np.ndarray:
    """u8 -> u8 activation as a table: quantize(act(dequantize(code))) for all 256 codes."""
    x = (np.arange(256, dtype=np.float32) - qin[1]) * np.float32(qin[0])
    y = [lambda v: v / (1 + np.exp(-v)), lambda v: v * np.clip(v + 3, 0, 6) / 6,
         lambda v: 1 / (1 + np.exp(-v)), lambda v: np.clip(v, lo, hi)][kind](x.astype(np.float32))
    return quantize(np.asarray(y, dtype=np.float32), qout[0], qout[1], "uint8")


def build_core_plan(spec: dict, stored: dict[str, np.ndarray]):
    """The core Plan for a spec (its JSON part) and its stored weights (see runtime.cnn.pack), and the
    bytes of the deployed weights (packed codes, scales, zero points, column sums; other arrays
    as stored)."""
    plan = _core.Plan()
    weight_bytes = sum(a.nbytes for key, a in stored.items() if not _PACKED_KEY.search(key))
    tensors = spec["tensors"]
    for t in tensors:
        h, w, c = t["shape"]
        plan.add_tensor(h, w, c, t["dtype"], t["scale"], t["zero_point"])

    def get(key):
        if key not in stored:
            raise ValueError(f"plan weights lack array {key!r}")
        return stored[key]

    for op in spec["ops"]:
        kind, name, ins, out = op["kind"], op["name"], op["inputs"], op["output"]
        lo, hi = op.get("lo", -_INF), op.get("hi", _INF)
        bias = get(op["bias"]) if "bias" in op else None
        if kind == "conv":
            weights, g = [], 0
            while f"{op['weight']}.g{g}" in stored:
                packed = PackedWeight.from_bytes(stored[f"{op['weight']}.g{g}"].tobytes())
                weights.append(packed._core)
                weight_bytes += packed.nbytes
                g += 1
            plan.add_conv(name, ins[0], out, op["mode"], tuple(op["kernel"]), tuple(op["stride"]),
                          tuple(op["padding"]), tuple(op["dilation"]), op["groups"], op["flatten_input"], weights,
                          bias, lo, hi, ins[1] if len(ins) > 1 else -1)
        elif kind == "depthwise":
            if parse_precision(op["precision"]).entry.quantized_weights:
                dw = _core.pack_depthwise_s8(get(op["weight"] + ".codes"))
                mult = (get(op["weight"] + ".scale") * np.float32(tensors[ins[0]]["scale"])).astype(np.float32)
            else:
                dw, mult = _core.pack_depthwise_f32(get(op["weight"])), None
            plan.add_depthwise(name, ins[0], out, tuple(op["stride"]), tuple(op["padding"]), tuple(op["dilation"]),
                               dw, mult, bias, lo, hi)
        elif kind == "add":
            plan.add_add(name, ins[0], ins[1], out, lo, hi)
        elif kind == "concat":
            plan.add_concat(name, ins, out)
        elif kind == "pool":
            plan.add_pool(name, ins[0], out, op["is_max"], tuple(op["kernel"]), tuple(op["stride"]),
                          tuple(op["padding"]), tuple(op["dilation"]), op["count_include_pad"])
        elif kind == "convert":
            plan.add_convert(name, ins[0], out)
        elif kind == "act":
            tin, tout = tensors[ins[0]], tensors[out]
            table = None
            if tout["dtype"] == "uint8":
                table = _act_table(op["act"], lo, hi, (tin["scale"], tin["zero_point"]),
                                   (tout["scale"], tout["zero_point"]))
            plan.add_act(name, ins[0], out, op["act"], lo, hi, table)
        else:
            raise ValueError(f"unknown plan op kind {kind!r} ({name})")
    plan.set_io(spec["input"], spec["output"])
    return plan, weight_bytes


class Plan:
    """A quantized model ready to run: ``plan.run(x)``, ``plan.profile(x)``, ``plan.save(path)``."""

    def __init__(self, spec: dict, stored: dict[str, np.ndarray], meta: dict | None = None):
        self.spec = spec
        self.stored = stored
        self.meta = dict(meta or {})
        validate_cnn_plan(spec, stored)  # before the core sees it (raises PlanFileError)
        self._core, self._weight_bytes = build_core_plan(spec, stored)

    # ------------------------------------------------------------ facts
    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Per-sample input shape, NCHW (C, H, W)."""
        return tuple(self.spec["input_shape"])

    @property
    def weight_bytes(self) -> int:
        """Bytes of the deployed weights: packed codes, scales, zero points, biases."""
        return int(self._weight_bytes)

    def layers(self) -> list[dict]:
        """name, kind and precision (what runs) of every conv/linear op, in execution order; a
        layer that runs something other than the config asked for (a depthwise conv has int8 and
        fp32 kernels only; a layer shallower than the group runs per-channel groups) also
        carries `requested`."""
        fallbacks = self.meta.get("fallbacks", {})
        return [dict(name=op["name"], kind=op["kind"], precision=op["precision"],
                     **({"requested": fallbacks[op["name"]]} if op["name"] in fallbacks else {}))
                for op in self.spec["ops"] if "precision" in op]

    # ------------------------------------------------------------ running
    def _input(self, x, layout: str) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype not in (np.float32, np.float64, np.float16):
            raise TypeError(f"plan input must be a float array, got dtype {x.dtype}")
        if layout not in ("nchw", "nhwc"):
            raise ValueError("layout must be 'nchw' or 'nhwc'")
        c, h, w = self.input_shape
        want = (c, h, w) if layout == "nchw" else (h, w, c)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"plan input must be [N, {', '.join(map(str, want))}] ({layout.upper()}), "
                             f"got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError("plan input has batch size 0")
        return np.ascontiguousarray(x, dtype=np.float32)  # NCHW is transposed, NaN / Inf refused by the core

    def _output(self, y: np.ndarray, layout: str) -> np.ndarray:
        if self.spec["output_layout"] == "flat":
            return y.reshape(y.shape[0], -1)
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2)) if layout == "nchw" else y

    def run(self, x, layout: str = "nchw") -> np.ndarray:
        """x: float array [N, C, H, W] (or NHWC with layout='nhwc'); returns float32 output
        ([N, classes] for classifiers, else in the input's layout)."""
        return self._output(self._core.run(self._input(x, layout), layout == "nchw"), layout)

    __call__ = run

    def profile(self, x, layout: str = "nchw", repeats: int = 1) -> list[dict]:
        """Per-op wall time (median of `repeats` runs after one warm-up): name, kind, precision,
        seconds, and im2col_s, the part of a conv's time spent gathering its patch rows."""
        xin, nchw = self._input(x, layout), layout == "nchw"
        self._core.run(xin, nchw)
        runs = [self._core.profile(xin, nchw)[1:] for _ in range(max(1, repeats))]
        seconds = np.median(np.array([r[0] for r in runs]), axis=0)
        im2col = np.median(np.array([r[1] for r in runs]), axis=0)
        return [dict(name=op["name"], kind=op["kind"], precision=op.get("precision", ""), seconds=float(s),
                     im2col_s=float(i)) for op, s, i in zip(self.spec["ops"], seconds, im2col)]

    def profile_by_kind(self, x, layout: str = "nchw", repeats: int = 5) -> dict[str, float]:
        """Seconds per kind of work, from profile(): 'gemm' (conv and linear layers with their fused
        bias / residual / clamp / requantize epilogue), 'im2col', 'depthwise', 'pool', 'add',
        'concat', 'act', 'convert' (quantize / dequantize, including the input's NCHW -> NHWC),
        and 'total' (their sum)."""
        out: dict[str, float] = {}
        for row in self.profile(x, layout, repeats):
            kind = "gemm" if row["kind"] == "conv" else row["kind"]
            out[kind] = out.get(kind, 0.0) + row["seconds"] - row["im2col_s"]
            if row["im2col_s"]:
                out["im2col"] = out.get("im2col", 0.0) + row["im2col_s"]
        out["total"] = sum(out.values())
        return out

    # ------------------------------------------------------------ files
    def save(self, path) -> None:
        from ..plan_file import write_plan

        write_plan(path, self.spec, self.stored, self.meta)

    def __repr__(self) -> str:
        precisions = sorted({layer["precision"] for layer in self.layers()})
        return (f"mixq.Plan({len(self.spec['ops'])} ops, {len(self.layers())} layers at {precisions}, "
                f"input {self.input_shape}, weights {self.weight_bytes / 1e6:.2f} MB)")
