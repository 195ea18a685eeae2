"""Lowering: a captured graph + a precision config + calibration observers -> a plan spec.

The spec is plain data: NHWC tensors (per-sample shape, dtype, quantization) and ops in
execution order, with float weights in `arrays`. It is what the core plan is built from, what
the fake-quant oracle simulates, and (with packed weights) what a plan file stores.

Where activations are int8: a tensor is uint8 when *every* reader takes uint8 input (int8
layers, or element-wise/pooling ops whose own output is uint8); otherwise it stays float32
and a reader that wants uint8 gets a quantize op. So int8 layers hand uint8 to each other
with no float round trip, and quantize/dequantize appear only at precision boundaries.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...quant import LayerPrecision, QuantConfig
from .graph import ACTIVATIONS, UNBOUNDED, Graph, Node

ACT_KIND = {name: i for i, name in enumerate(ACTIVATIONS + ("clamp",))}


@dataclass
class PlanSpec:
    tensors: list[dict] = field(default_factory=list)
    ops: list[dict] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    input: int = -1
    output: int = -1
    input_shape: tuple[int, int, int] = (0, 0, 0)   # per sample, NCHW
    output_layout: str = "nchw"                      # "nchw" (4-D output) or "flat" ([N, F])

    def to_json(self) -> dict:
        return dict(tensors=self.tensors, ops=self.ops, input=self.input, output=self.output,
                    input_shape=list(self.input_shape), output_layout=self.output_layout)


def nhwc(shape: tuple[int, ...]) -> list[int]:
    return [shape[2], shape[3], shape[1]] if len(shape) == 4 else [1, 1, int(np.prod(shape[1:]))]


def effective_precision(node: Node, p: LayerPrecision) -> LayerPrecision:
    """What actually runs: depthwise convs have int8 and fp32 kernels only."""
    if node.is_depthwise:
        return p.for_kernel_set("depthwise")
    return p.at_depth(int(np.prod(node.weight.shape[1:])))


def layer_precisions(graph: Graph, config: QuantConfig) -> dict[str, LayerPrecision]:
    config.check_names(n.name for n in graph.layers())
    return {n.name: effective_precision(n, config.precision_of(n.name)) for n in graph.layers()}


def gemm_weight(node: Node, flatten_source=None) -> np.ndarray:
    """[groups, C_out/groups, K] float32 with K in the im2col order (ky, kx, c)."""
    w = node.weight
    if node.op == "linear":
        if flatten_source is not None and len(flatten_source) == 4:  # torch flattens (C, H, W); NHWC is (H, W, C)
            _, c, h, ww = flatten_source
            w = w.reshape(w.shape[0], c, h, ww).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
        return np.ascontiguousarray(w[None], dtype=np.float32)
    g = node.attrs["groups"]
    cout, cin_g, kh, kw = w.shape
    w = w.reshape(g, cout // g, cin_g, kh, kw).transpose(0, 1, 3, 4, 2).reshape(g, cout // g, kh * kw * cin_g)
    return np.ascontiguousarray(w, dtype=np.float32)


class _Lowering:
    def __init__(self, graph: Graph, config: QuantConfig, observers: dict):
        self.g, self.observers = graph, observers
        self.prec = layer_precisions(graph, config)
        self.spec = PlanSpec()
        self.tensor_of: dict[str, int] = {}          # graph node -> tensor id
        self.converted: dict[tuple[int, str], int] = {}
        self.fused = self.find_residual_fusions()
        self.fused_convs = {conv for conv, _ in self.fused.values()}  # emitted at their add

    def find_residual_fusions(self) -> dict[str, tuple[str, str]]:
        """add(conv(x), r) -> one conv op that adds r in its epilogue (the add costs no pass over
        memory). Returns {add name: (conv name, residual name)}."""
        fused, convs = {}, set()
        for node in self.g.nodes:
            if node.op != "add":
                continue
            for i, j in ((0, 1), (1, 0)):
                src = self.g[node.inputs[i]]
                if (src.is_layer and not src.is_depthwise and src.clamp == UNBOUNDED and src.name not in convs
                        and node.inputs[j] != src.name and len(self.g.consumers(src.name)) == 1):
                    fused[node.name] = (src.name, node.inputs[j])
                    convs.add(src.name)
                    break
        return fused

    # ---------------------------------------------------------------- dtypes
    def base(self, name: str) -> str:
        """Flatten is a view: its readers read its input's tensor."""
        while self.g[name].op == "flatten":
            name = self.g[name].inputs[0]
        return name

    def readers(self, name: str) -> list[Node]:
        out = []
        for n in self.g.consumers(name):
            out += self.readers(n.name) if n.op == "flatten" else [n]
        return out

    def decide_dtypes(self) -> dict[str, str]:
        dtype: dict[str, str] = {}
        for node in reversed(self.g.nodes):
            if node.op == "flatten":
                continue
            readers = self.readers(node.name)
            wants = []
            for r in readers:
                if r.is_layer:
                    wants.append("uint8" if self.prec[r.name].int8_activations else "float32")
                elif r.name in self.fused:
                    continue  # a fused residual is read in either dtype
                else:
                    wants.append(dtype[r.name])
            # The fp32 depthwise kernel writes fp32 only (its uint8 readers get a quantize op).
            fp32_depthwise = node.is_depthwise and not self.prec[node.name].int8_activations
            u8 = (node.name != self.g.output and node.op != "input" and readers and not fp32_depthwise
                  and all(w == "uint8" for w in wants) and node.name in self.observers)
            dtype[node.name] = "uint8" if u8 else "float32"
        return dtype

    # ---------------------------------------------------------------- tensors
    def qparams(self, name: str) -> tuple[float, int]:
        scale, zp = self.observers[name].qparams()
        return float(scale), int(zp)

    def new_tensor(self, name: str, shape, dtype: str, q=(1.0, 0)) -> int:
        self.spec.tensors.append(dict(name=name, shape=[int(s) for s in shape], dtype=dtype,
                                      scale=float(q[0]), zero_point=int(q[1])))
        return len(self.spec.tensors) - 1

    def read(self, name: str, dtype: str) -> int:
        """Tensor id of graph node `name` in `dtype`, adding a quantize/dequantize op if needed."""
        t = self.tensor_of[self.base(name)]
        if self.spec.tensors[t]["dtype"] == dtype:
            return t
        key = (t, dtype)
        if key not in self.converted:
            src = self.spec.tensors[t]
            q = self.qparams(self.base(name)) if dtype == "uint8" else (1.0, 0)
            out = self.new_tensor(f"{src['name']}:{dtype}", src["shape"], dtype, q)
            self.spec.ops.append(dict(kind="convert", name=f"{'quantize' if dtype == 'uint8' else 'dequantize'}:{src['name']}",
                                      inputs=[t], output=out))
            self.converted[key] = out
        return self.converted[key]

    # ---------------------------------------------------------------- ops
    def layer_op(self, node: Node, lo: float, hi: float) -> dict:
        p = self.prec[node.name]
        in_dtype = "uint8" if p.int8_activations else "float32"
        op = dict(name=node.name, lo=lo, hi=hi, inputs=[self.read(node.inputs[0], in_dtype)], precision=str(p))
        key = f"{node.name}.weight"
        if node.bias is not None:
            self.spec.arrays[f"{node.name}.bias"] = node.bias.astype(np.float32)
            op["bias"] = f"{node.name}.bias"
        if node.is_depthwise:
            self.spec.arrays[key] = np.ascontiguousarray(node.weight[:, 0].transpose(1, 2, 0), dtype=np.float32)
            op.update(kind="depthwise", kernel=node.attrs["kernel"], stride=node.attrs["stride"],
                      padding=node.attrs["padding"], dilation=node.attrs["dilation"], weight=key)
            return op
        src = self.g[node.inputs[0]]
        self.spec.arrays[key] = gemm_weight(node, src.attrs["source_shape"] if src.op == "flatten" else None)
        mode = p.entry.core_mode
        if node.op == "linear":
            op.update(kind="conv", mode=mode, kernel=(1, 1), stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                      groups=1, flatten_input=True, weight=key)
        else:
            op.update(kind="conv", mode=mode, kernel=node.attrs["kernel"], stride=node.attrs["stride"],
                      padding=node.attrs["padding"], dilation=node.attrs["dilation"],
                      groups=node.attrs["groups"], flatten_input=False, weight=key)
        return op

    def emit(self, node: Node, dtype: str) -> None:
        if node.op == "flatten":
            return
        if node.op == "input":
            self.tensor_of[node.name] = self.new_tensor(node.name, nhwc(node.shape), "float32")
            self.spec.input = self.tensor_of[node.name]
            return
        if node.name in self.fused_convs:
            return  # emitted at its add
        lo, hi = (float(v) for v in node.clamp)
        op = dict(name=node.name, lo=lo, hi=hi)
        if node.is_layer:
            op = self.layer_op(node, lo, hi)
        elif node.name in self.fused:
            conv, residual = self.fused[node.name]
            op = self.layer_op(self.g[conv], lo, hi)
            op["inputs"].append(self.tensor_of[self.base(residual)])
        elif node.op == "add":
            op.update(kind="add", inputs=[self.read(i, dtype) for i in node.inputs])
        elif node.op == "concat":
            op.update(kind="concat", inputs=[self.read(i, dtype) for i in node.inputs])
        elif node.op == "pool":
            a = node.attrs
            op.update(kind="pool", inputs=[self.read(node.inputs[0], dtype)], is_max=a["mode"] == "max",
                      kernel=a["kernel"], stride=a["stride"], padding=a["padding"], dilation=a["dilation"],
                      count_include_pad=a["count_include_pad"])
        elif node.op == "act":
            op.update(kind="act", inputs=[self.read(node.inputs[0], dtype)], act=ACT_KIND[node.attrs["kind"]])
        else:
            raise ValueError(f"cannot lower op {node.op!r} ({node.name})")
        q = (1.0, 0)
        if dtype == "uint8":
            # u8 max pooling moves codes around: it keeps its input's quantization.
            q = self.input_q(op) if op["kind"] == "pool" and op["is_max"] else self.qparams(node.name)
        op["output"] = self.tensor_of[node.name] = self.new_tensor(node.name, nhwc(node.shape), dtype, q)
        self.spec.ops.append(op)

    def input_q(self, op) -> tuple[float, int]:
        t = self.spec.tensors[op["inputs"][0]]
        return t["scale"], t["zero_point"]

    def run(self) -> PlanSpec:
        dtypes = self.decide_dtypes()
        for node in self.g.nodes:
            self.emit(node, dtypes.get(node.name, "float32"))
        s = self.spec
        s.output = self.read(self.g.output, "float32")
        in_shape = self.g[self.g.input].shape
        s.input_shape = tuple(int(v) for v in in_shape[1:])
        s.output_layout = "nchw" if len(self.g[self.base(self.g.output)].shape) == 4 and \
            self.g[self.g.output].op != "flatten" else "flat"
        return s


def lower(graph: Graph, config: QuantConfig, observers: dict) -> PlanSpec:
    return _Lowering(graph, config, observers).run()
