"""torch.fx capture: an nn.Module and an example input -> a `Graph` of supported ops.

BatchNorm is folded into the conv/linear before it; ReLU/ReLU6/Hardtanh after a conv, linear
or add become that node's clamp. Anything the runtime cannot run is collected and reported
in one `UnsupportedModelError` naming each op and its module path.
"""
from __future__ import annotations

import operator

import numpy as np

from ..errors import UnsupportedModelError
from .graph import UNBOUNDED, Graph, Node


def _np(t) -> np.ndarray:
    return t.detach().to("cpu").double().numpy()


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


class _Capturer:
    def __init__(self, gm):
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        self.torch, self.nn, self.F = torch, nn, F
        self.gm = gm
        self.nodes: list[Node] = []
        self.value: dict[str, str | None] = {}  # fx node name -> IR node name (None: not a tensor)
        self.unsupported: list[str] = []
        self.input_name = self.output_name = None

    # ------------------------------------------------------------ helpers
    def ir(self, fx_node) -> Node | None:
        name = self.value.get(fx_node.name)
        return None if name is None else self._by_name[name]

    def add(self, node: Node, fx_node) -> None:
        node.source = fx_node.name
        self.nodes.append(node)
        self._by_name[node.name] = node
        self.value[fx_node.name] = node.name

    def alias(self, fx_node, src) -> None:
        self.value[fx_node.name] = self.value.get(src.name) if hasattr(src, "name") else None

    def shape(self, fx_node) -> tuple[int, ...] | None:
        meta = fx_node.meta.get("tensor_meta")
        return tuple(int(s) for s in meta.shape) if meta is not None and hasattr(meta, "shape") else None

    def fusable(self, fx_input, ops) -> Node | None:
        """The IR node of fx_input when it may absorb what follows: its op is in `ops`, it has
        no clamp yet, and nothing else reads it."""
        node = self.ir(fx_input) if hasattr(fx_input, "name") else None
        if node is None or node.op not in ops or node.clamp != UNBOUNDED or node.source != fx_input.name:
            return None
        return node if len(fx_input.users) == 1 else None

    def reject(self, fx_node, what: str) -> None:
        where = fx_node.target if fx_node.op == "call_module" else fx_node.name
        self.unsupported.append(f"{where}: {what}")
        self.value[fx_node.name] = None

    # ------------------------------------------------------------ ops
    def conv(self, fx_node, m) -> None:
        if m.padding_mode != "zeros":
            return self.reject(fx_node, f"Conv2d padding_mode={m.padding_mode!r} (only 'zeros')")
        if isinstance(m.padding, str):  # 'same' / 'valid'
            k = np.array(m.kernel_size) - 1
            pad = tuple(int(v) for v in (np.array(m.dilation) * k // 2)) if m.padding == "same" else (0, 0)
            if m.padding == "same" and any((np.array(m.dilation) * k) % 2):
                return self.reject(fx_node, "Conv2d padding='same' with an even kernel (asymmetric padding)")
        else:
            pad = _pair(m.padding)
        attrs = dict(kernel=_pair(m.kernel_size), stride=_pair(m.stride), padding=pad,
                     dilation=_pair(m.dilation), groups=int(m.groups))
        self.add(Node(fx_node.target, "conv", [self.value[fx_node.args[0].name]], self.shape(fx_node), attrs,
                      _np(m.weight), _np(m.bias) if m.bias is not None else None), fx_node)

    def linear(self, fx_node, m) -> None:
        self.add(Node(fx_node.target, "linear", [self.value[fx_node.args[0].name]], self.shape(fx_node), {},
                      _np(m.weight), _np(m.bias) if m.bias is not None else None), fx_node)

    def batchnorm(self, fx_node, m) -> None:
        if not m.track_running_stats or m.running_mean is None:
            return self.reject(fx_node, f"{type(m).__name__} without running statistics")
        inv = 1.0 / np.sqrt(_np(m.running_var) + m.eps)
        gamma = _np(m.weight) if m.weight is not None else np.ones_like(inv)
        beta = _np(m.bias) if m.bias is not None else np.zeros_like(inv)
        s = gamma * inv
        shift = beta - _np(m.running_mean) * s
        node = self.fusable(fx_node.args[0], ("conv", "linear"))
        if node is None:
            # Not after a conv/linear: a per-channel affine, i.e. a 1x1 depthwise conv.
            c = s.shape[0]
            attrs = dict(kernel=(1, 1), stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=c)
            return self.add(Node(fx_node.target, "conv", [self.value[fx_node.args[0].name]], self.shape(fx_node), attrs,
                                 s.reshape(c, 1, 1, 1), shift), fx_node)
        node.weight = node.weight * s.reshape(-1, *([1] * (node.weight.ndim - 1)))
        node.bias = (node.bias if node.bias is not None else np.zeros_like(s)) * s + shift
        node.source = fx_node.name
        self.value[fx_node.name] = node.name

    def clamp(self, fx_node, lo: float, hi: float) -> None:
        node = self.fusable(fx_node.args[0], ("conv", "linear", "add"))
        if node is not None:
            node.clamp = (lo, hi)
            node.source = fx_node.name
            self.value[fx_node.name] = node.name
        else:
            self.add(Node(fx_node.name, "act", [self.value[fx_node.args[0].name]], self.shape(fx_node),
                          dict(kind="clamp"), clamp=(lo, hi)), fx_node)

    def activation(self, fx_node, kind: str) -> None:
        self.add(Node(fx_node.name, "act", [self.value[fx_node.args[0].name]], self.shape(fx_node), dict(kind=kind)),
                 fx_node)

    def pool(self, fx_node, mode: str, kernel, stride, padding, dilation=1, ceil_mode=False,
             count_include_pad=True) -> None:
        if ceil_mode:
            return self.reject(fx_node, "pooling with ceil_mode=True")
        stride = kernel if stride is None or stride == [] else stride
        attrs = dict(mode=mode, kernel=_pair(kernel), stride=_pair(stride), padding=_pair(padding),
                     dilation=_pair(dilation), count_include_pad=bool(count_include_pad))
        self.add(Node(self.name_of(fx_node), "pool", [self.value[fx_node.args[0].name]], self.shape(fx_node), attrs),
                 fx_node)

    def adaptive_avg(self, fx_node, output_size) -> None:
        n, c, h, w = self.shape(fx_node.args[0])
        oh, ow = _pair(output_size) if output_size is not None else (h, w)
        oh, ow = oh or h, ow or w
        if h % oh or w % ow:
            return self.reject(fx_node, f"adaptive average pooling {h}x{w} -> {oh}x{ow} (sizes must divide)")
        self.pool(fx_node, "avg", (h // oh, w // ow), (h // oh, w // ow), 0)

    def name_of(self, fx_node) -> str:
        return fx_node.target if fx_node.op == "call_module" else fx_node.name

    def flatten(self, fx_node) -> None:
        src, out = self.shape(fx_node.args[0]), self.shape(fx_node)
        if out is None or src is None or len(out) != 2 or out[0] != src[0]:
            return self.reject(fx_node, f"reshape {src} -> {out} (only flattening each sample is supported)")
        if len(src) == 2:
            return self.alias(fx_node, fx_node.args[0])
        self.add(Node(self.name_of(fx_node), "flatten", [self.value[fx_node.args[0].name]], out, dict(source_shape=src)),
                 fx_node)

    def binary_add(self, fx_node) -> None:
        a, b = fx_node.args[0], fx_node.args[1]
        if not (hasattr(a, "op") and hasattr(b, "op")) or fx_node.kwargs.get("alpha", 1) != 1:
            return self.reject(fx_node, "add with a constant or alpha (only tensor + tensor)")
        if self.shape(a) != self.shape(b):
            return self.reject(fx_node, f"add with broadcasting {self.shape(a)} + {self.shape(b)}")
        self.add(Node(fx_node.name, "add", [self.value[a.name], self.value[b.name]], self.shape(fx_node)), fx_node)

    def concat(self, fx_node) -> None:
        tensors = fx_node.args[0]
        dim = fx_node.args[1] if len(fx_node.args) > 1 else fx_node.kwargs.get("dim", 0)
        if len(self.shape(fx_node)) != 4 or dim not in (1, -3):
            return self.reject(fx_node, "concatenation other than along channels of 4-D tensors")
        self.add(Node(fx_node.name, "concat", [self.value[t.name] for t in tensors], self.shape(fx_node)), fx_node)

    # ------------------------------------------------------------ dispatch
    def module(self, fx_node) -> None:
        nn = self.nn
        m = self.gm.get_submodule(fx_node.target)
        if isinstance(m, nn.Conv2d):
            self.conv(fx_node, m)
        elif isinstance(m, nn.Linear):
            self.linear(fx_node, m)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            self.batchnorm(fx_node, m)
        elif isinstance(m, nn.ReLU):
            self.clamp(fx_node, 0.0, float("inf"))
        elif isinstance(m, nn.ReLU6):
            self.clamp(fx_node, 0.0, 6.0)
        elif isinstance(m, nn.Hardtanh):
            self.clamp(fx_node, float(m.min_val), float(m.max_val))
        elif isinstance(m, (nn.SiLU, nn.Hardswish, nn.Sigmoid)):
            self.activation(fx_node, type(m).__name__.lower())
        elif isinstance(m, nn.MaxPool2d):
            self.pool(fx_node, "max", m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)
        elif isinstance(m, nn.AvgPool2d):
            if m.divisor_override is not None:
                return self.reject(fx_node, "AvgPool2d with divisor_override")
            self.pool(fx_node, "avg", m.kernel_size, m.stride, m.padding, 1, m.ceil_mode, m.count_include_pad)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            self.adaptive_avg(fx_node, m.output_size)
        elif isinstance(m, (nn.Dropout, nn.Identity)):
            self.alias(fx_node, fx_node.args[0])
        elif isinstance(m, nn.Flatten):
            self.flatten(fx_node)
        else:
            self.reject(fx_node, self.describe(fx_node))

    def function(self, fx_node, fn, args, kwargs) -> None:
        torch, F = self.torch, self.F
        x = args[0] if args else None
        if fn in (operator.add, torch.add):
            self.binary_add(fx_node)
        elif fn is torch.cat:
            self.concat(fx_node)
        elif fn in (F.relu, torch.relu):
            self.clamp(fx_node, 0.0, float("inf"))
        elif fn is F.relu6:
            self.clamp(fx_node, 0.0, 6.0)
        elif fn is F.hardtanh:
            self.clamp(fx_node, float(kwargs.get("min_val", args[1] if len(args) > 1 else -1.0)),
                       float(kwargs.get("max_val", args[2] if len(args) > 2 else 1.0)))
        elif fn in (F.silu, F.hardswish, torch.sigmoid):
            self.activation(fx_node, {F.silu: "silu", F.hardswish: "hardswish", torch.sigmoid: "sigmoid"}[fn])
        elif fn in (torch.flatten,) or fn in ("flatten", "view", "reshape"):
            self.flatten(fx_node)
        elif fn in ("contiguous", F.dropout) or fn is torch.nn.functional.dropout:
            self.alias(fx_node, x)
        elif fn is F.adaptive_avg_pool2d:
            self.adaptive_avg(fx_node, args[1] if len(args) > 1 else kwargs["output_size"])
        elif fn is F.max_pool2d:
            get = lambda i, k, d: args[i] if len(args) > i else kwargs.get(k, d)  # noqa: E731
            self.pool(fx_node, "max", get(1, "kernel_size", None), get(2, "stride", None), get(3, "padding", 0),
                      get(4, "dilation", 1), get(5, "ceil_mode", False))
        elif fn is F.avg_pool2d:
            get = lambda i, k, d: args[i] if len(args) > i else kwargs.get(k, d)  # noqa: E731
            if get(6, "divisor_override", None) is not None:
                return self.reject(fx_node, "avg_pool2d with divisor_override")
            self.pool(fx_node, "avg", get(1, "kernel_size", None), get(2, "stride", None), get(3, "padding", 0), 1,
                      get(4, "ceil_mode", False), get(5, "count_include_pad", True))
        elif fn == "add":
            self.binary_add(fx_node)
        elif fn == "relu":
            self.clamp(fx_node, 0.0, float("inf"))
        else:
            self.reject(fx_node, self.describe(fx_node))

    def describe(self, fx_node) -> str:
        if fx_node.op == "call_module":
            return f"module {type(self.gm.get_submodule(fx_node.target)).__name__}"
        return f"function {getattr(fx_node.target, '__name__', str(fx_node.target))}"

    def known_op(self, fx_node) -> bool:
        """Whether the capture handles this kind of op at all (its arguments aside)."""
        nn, F, torch = self.nn, self.F, self.torch
        if fx_node.op == "call_module":
            return isinstance(self.gm.get_submodule(fx_node.target), (
                nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.BatchNorm1d, nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.SiLU,
                nn.Hardswish, nn.Sigmoid, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Dropout,
                nn.Identity, nn.Flatten))
        known = (operator.add, torch.add, torch.cat, F.relu, torch.relu, F.relu6, F.hardtanh, F.silu, F.hardswish,
                 torch.sigmoid, torch.flatten, F.dropout, F.adaptive_avg_pool2d, F.max_pool2d, F.avg_pool2d,
                 "flatten", "view", "reshape", "contiguous", "add", "relu")
        return any(fx_node.target is k or fx_node.target == k for k in known)

    def run(self) -> Graph:
        self._by_name: dict[str, Node] = {}
        for fx_node in self.gm.graph.nodes:
            if fx_node.op == "placeholder":
                if self.input_name is not None:
                    self.reject(fx_node, "a second model input (one input tensor is supported)")
                    continue
                self.input_name = fx_node.name
                self.add(Node(fx_node.name, "input", [], self.shape(fx_node)), fx_node)
            elif fx_node.op == "output":
                out = fx_node.args[0]
                if not hasattr(out, "op") or self.value.get(out.name) is None:
                    if hasattr(out, "op"):
                        continue  # already reported
                    self.unsupported.append("output: only a single tensor output is supported")
                    continue
                self.output_name = self.value[out.name]
            elif self.shape(fx_node) is None:
                if fx_node.op == "call_module":  # a module returning a tuple (LSTM, GRU, attention)
                    self.reject(fx_node, self.describe(fx_node) + " (returns a tuple)")
                self.value[fx_node.name] = None  # a size or other non-tensor value: shapes are static
            elif any(hasattr(a, "op") and a.name in self.value and self.value[a.name] is None
                     and (self.shape(a) is not None or a.op == "call_module") for a in fx_node.all_input_nodes):
                # Downstream of an unsupported op: still report this op if it is unsupported too.
                if not self.known_op(fx_node):
                    self.reject(fx_node, self.describe(fx_node))
                self.value[fx_node.name] = None
            elif fx_node.op == "call_module":
                self.module(fx_node)
            elif fx_node.op == "call_function":
                self.function(fx_node, fx_node.target, fx_node.args, fx_node.kwargs)
            elif fx_node.op == "call_method":
                self.function(fx_node, fx_node.target, fx_node.args, fx_node.kwargs)
            else:
                self.reject(fx_node, f"{fx_node.op} {fx_node.target}")
        if self.unsupported:
            raise UnsupportedModelError("mixq cannot compile this model; unsupported ops:\n  "
                                        + "\n  ".join(self.unsupported))
        graph = Graph(self.nodes, self.input_name, self.output_name)
        _check_flatten_consumers(graph)
        return graph


def _check_flatten_consumers(graph: Graph) -> None:
    """An NHWC sample flattens in (H, W, C) order: only a linear layer (whose weight columns the
    lowering permutes) may read a flattened spatial tensor."""
    bad = []
    for n in graph.nodes:
        if n.op == "flatten" and (n.attrs["source_shape"][2] * n.attrs["source_shape"][3]) > 1:
            users = graph.consumers(n.name)
            if n.name == graph.output or any(u.op != "linear" for u in users):
                bad.append(f"{n.name}: flatten of a spatial tensor read by something other than a linear layer")
    if bad:
        raise UnsupportedModelError("mixq cannot compile this model; unsupported ops:\n  " + "\n  ".join(bad))


def capture(model, example_input) -> tuple[Graph, object]:
    """Traces `model` (put in eval mode) with torch.fx; returns (graph, fx GraphModule)."""
    import torch
    from torch.fx.passes.shape_prop import ShapeProp

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    example = torch.as_tensor(example_input, dtype=torch.float32)
    if example.ndim != 4:
        raise ValueError(f"example input must be a 4-D NCHW batch, got shape {tuple(example.shape)}")
    model = model.eval()
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as e:  # data-dependent control flow and friends
        raise UnsupportedModelError(f"torch.fx could not trace the model: {e}") from e
    with torch.no_grad():
        ShapeProp(gm).propagate(example)
    return _Capturer(gm).run(), gm
