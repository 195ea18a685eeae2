"""ONNX frontend: an ONNX file -> the same `Graph` the torch.fx capture produces.

Nodes are converted in the file's (topological) order and each is run on the example input as
it is built (`graph_run.node_forward`), so every shape is known without ONNX shape inference
and shape arithmetic (Shape, Gather, Concat of constants, ...) folds to constants. BatchNorm
folds into the conv/linear before it; Relu/Clip after a conv, linear or add becomes its clamp;
x * Sigmoid(x) is SiLU; MatMul + Add of a constant is a linear layer with a bias.

An already-quantized model (QDQ: QuantizeLinear -> DequantizeLinear pairs, as ORT's
`quantize_static` writes) keeps its activation scales: each pair on an activation gives that
tensor fixed qparams, which override calibration. Quantized weights are dequantized to float
(`DequantizeLinear` of an initializer), and mixq quantizes them again at the layer's precision.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UnsupportedModelError
from .capture import _check_flatten_consumers
from .graph import UNBOUNDED, Graph, Node
from .graph_run import node_forward


class OnnxFileError(ValueError):
    """The file is not a readable ONNX model (missing, truncated, corrupt or invalid)."""


def load_onnx(source):
    """An onnx.ModelProto from a path, bytes or a ModelProto; clear errors for bad files."""
    try:
        import onnx
    except ImportError as e:
        raise ImportError("reading ONNX files needs the onnx package: pip install onnx") from e
    if isinstance(source, onnx.ModelProto):
        model, where = source, "model"
    else:
        if isinstance(source, (bytes, bytearray)):
            data, where = bytes(source), "bytes"
        else:
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(f"no such ONNX file: {path}")
            data, where = path.read_bytes(), str(path)
        if not data:
            raise OnnxFileError(f"{where}: empty file, not an ONNX model")
        try:
            model = onnx.load_model_from_string(data)
        except Exception as e:  # protobuf's DecodeError and friends
            raise OnnxFileError(f"{where}: not a readable ONNX model (truncated or corrupt?): {e}") from None
    if not model.graph.node:
        raise OnnxFileError(f"{where}: not an ONNX model (no graph nodes; truncated or corrupt?)")
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise OnnxFileError(f"{where}: invalid ONNX model: {str(e).splitlines()[0]}") from None
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < 13:
        raise OnnxFileError(f"{where}: opset {opset}; mixq reads opset 13 and newer (onnx.version_converter "
                            "upgrades a model)")
    return model


class _Const:
    """A constant value (an initializer, a Constant, or folded shape arithmetic)."""

    def __init__(self, value: np.ndarray):
        self.value = np.asarray(value)


class _SigmoidOf:
    """Sigmoid(x) awaiting the Mul that makes it x * Sigmoid(x) = SiLU."""

    def __init__(self, x: str):
        self.x = x


class _Converter:
    def __init__(self, model, example):
        import onnx
        from onnx import numpy_helper

        self.onnx, self.numpy_helper = onnx, numpy_helper
        self.g = model.graph
        self.example = example
        self.nodes: list[Node] = []
        self.by_name: dict[str, Node] = {}
        self.value: dict[str, object] = {}    # ONNX tensor name -> IR node name | _Const | _SigmoidOf | None
        self.example_value: dict[str, object] = {}  # IR node name -> its torch value on the example input
        self.fixed_qparams: dict[str, tuple[float, int]] = {}
        self.unsupported: list[str] = []
        self.users: dict[str, int] = {}
        for n in self.g.node:
            for i in n.input:
                self.users[i] = self.users.get(i, 0) + 1
        for o in self.g.output:
            self.users[o.name] = self.users.get(o.name, 0) + 1
        for init in self.g.initializer:
            self.value[init.name] = _Const(numpy_helper.to_array(init))

    # ------------------------------------------------------------ helpers
    def attrs(self, n) -> dict:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in n.attribute}

    def const(self, name: str) -> np.ndarray | None:
        v = self.value.get(name)
        return v.value if isinstance(v, _Const) else None

    def tensor(self, name: str) -> str | None:
        v = self.value.get(name)
        return v if isinstance(v, str) else None

    def shape(self, ir_name: str) -> tuple[int, ...]:
        return tuple(self.example_value[ir_name].shape)

    def add(self, n, node: Node) -> None:
        """Runs the new node on the example input (its shape) and binds n's output to it."""
        base, k = node.name, 1
        while node.name in self.by_name:
            node.name, k = f"{base}#{k}", k + 1
        out = node_forward(node, [self.example_value[i] for i in node.inputs])
        self.example_value[node.name] = out
        node.shape = tuple(out.shape)
        node.source = n.output[0]
        self.nodes.append(node)
        self.by_name[node.name] = node
        self.value[n.output[0]] = node.name

    def alias(self, n, src: str) -> None:
        self.value[n.output[0]] = self.value.get(src)
        ir = self.tensor(src)
        if ir is not None and self.by_name[ir].source == src and self.users.get(src, 0) == 1:
            self.by_name[ir].source = n.output[0]  # still the node's latest value: it may absorb a clamp

    def fusable(self, src: str, ops) -> Node | None:
        """The IR node producing `src` when it may absorb what follows: its op is in `ops`, no
        clamp yet, src is its latest value, and nothing else reads src."""
        ir = self.tensor(src)
        node = self.by_name.get(ir) if ir else None
        if node is None or node.op not in ops or node.clamp != UNBOUNDED or node.source != src:
            return None
        return node if self.users.get(src, 0) == 1 else None

    def refresh(self, node: Node, n) -> None:
        """node absorbed n (a clamp or a BatchNorm): recompute its example value."""
        out = node_forward(node, [self.example_value[i] for i in node.inputs])
        self.example_value[node.name] = out
        node.shape = tuple(out.shape)
        node.source = n.output[0]
        self.value[n.output[0]] = node.name

    def reject(self, n, what: str) -> None:
        self.unsupported.append(f"{n.name or n.output[0]} ({n.op_type}): {what}")
        for o in n.output:
            self.value[o] = None

    @staticmethod
    def name(n) -> str:
        return n.name or n.output[0]

    # ------------------------------------------------------------ ops
    def conv(self, n) -> None:
        a = self.attrs(n)
        w = self.const(n.input[1])
        b = self.const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if w is None or w.ndim != 4:
            return self.reject(n, "only 2-D convolutions with constant weights")
        if len(n.input) > 2 and n.input[2] and b is None:
            return self.reject(n, "a non-constant bias")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
            return self.reject(n, f"auto_pad={a['auto_pad']!r} (give explicit pads)")
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if pads[:2] != pads[2:]:
            return self.reject(n, f"asymmetric padding {pads}")
        attrs = dict(kernel=tuple(int(k) for k in w.shape[2:]), stride=tuple(a.get("strides", [1, 1])),
                     padding=(int(pads[0]), int(pads[1])), dilation=tuple(a.get("dilations", [1, 1])),
                     groups=int(a.get("group", 1)))
        self.add(n, Node(self.name(n), "conv", [self.tensor(n.input[0])], (), attrs, w.astype(np.float64),
                         None if b is None else b.astype(np.float64)))

    def linear(self, n, w: np.ndarray, b: np.ndarray | None) -> None:
        x = self.tensor(n.input[0])
        if len(self.shape(x)) != 2:
            return self.reject(n, f"a matrix product on a {len(self.shape(x))}-D input (only [N, features])")
        self.add(n, Node(self.name(n), "linear", [x], (), {}, np.ascontiguousarray(w, dtype=np.float64),
                         None if b is None else np.asarray(b, dtype=np.float64).reshape(-1)))

    def gemm(self, n) -> None:
        a = self.attrs(n)
        w = self.const(n.input[1])
        c = self.const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if w is None or a.get("transA", 0):
            return self.reject(n, "only x @ W with a constant W (transA=0)")
        w = (w if a.get("transB", 0) else w.T) * a.get("alpha", 1.0)
        if c is not None:
            if c.size not in (1, w.shape[0]):
                return self.reject(n, f"bias of shape {c.shape}")
            c = np.broadcast_to(c.reshape(-1), (w.shape[0],)) * a.get("beta", 1.0)
        self.linear(n, w, c)

    def matmul(self, n) -> None:
        w = self.const(n.input[1])
        if w is None or w.ndim != 2:
            return self.reject(n, "only x @ W with a constant 2-D W")
        self.linear(n, w.T, None)

    def add_op(self, n) -> None:
        a, b = n.input[0], n.input[1]
        ca, cb = self.const(a), self.const(b)
        if (ca is None) != (cb is None):  # tensor + constant: a bias for the linear layer before
            x, c = (b, ca) if ca is not None else (a, cb)
            node = self.fusable(x, ("linear",))
            if node is not None and node.bias is None and c.size == node.weight.shape[0]:
                node.bias = c.astype(np.float64).reshape(-1)
                return self.refresh(node, n)
            return self.reject(n, "adding a constant (only as the bias of a preceding MatMul)")
        ta, tb = self.tensor(a), self.tensor(b)
        if ta is None or tb is None:
            return self.reject(n, "an input that is not a tensor mixq computes")
        if self.shape(ta) != self.shape(tb):
            return self.reject(n, f"add with broadcasting {self.shape(ta)} + {self.shape(tb)}")
        self.add(n, Node(self.name(n), "add", [ta, tb], ()))

    def clamp(self, n, lo: float, hi: float) -> None:
        node = self.fusable(n.input[0], ("conv", "linear", "add"))
        if node is not None:
            node.clamp = (lo, hi)
            return self.refresh(node, n)
        self.add(n, Node(self.name(n), "act", [self.tensor(n.input[0])], (), dict(kind="clamp"), clamp=(lo, hi)))

    def clip(self, n) -> None:
        lo = self.const(n.input[1]) if len(n.input) > 1 and n.input[1] else None
        hi = self.const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if (len(n.input) > 1 and n.input[1] and lo is None) or (len(n.input) > 2 and n.input[2] and hi is None):
            return self.reject(n, "non-constant bounds")
        self.clamp(n, float(lo) if lo is not None else float("-inf"), float(hi) if hi is not None else float("inf"))

    def sigmoid(self, n) -> None:
        x = n.input[0]
        readers = [m for m in self.g.node if n.output[0] in m.input]
        if (len(readers) == 1 and readers[0].op_type == "Mul" and self.users.get(n.output[0]) == 1
                and sorted(readers[0].input) == sorted([x, n.output[0]])):
            self.value[n.output[0]] = _SigmoidOf(x)  # the Mul makes it SiLU
            return
        self.activation(n, "sigmoid")

    def mul(self, n) -> None:
        for s, x in ((n.input[0], n.input[1]), (n.input[1], n.input[0])):
            v = self.value.get(s)
            if isinstance(v, _SigmoidOf) and v.x == x and self.tensor(x) is not None:
                return self.add(n, Node(self.name(n), "act", [self.tensor(x)], (), dict(kind="silu")))
        self.reject(n, "only x * Sigmoid(x) (SiLU)")

    def activation(self, n, kind: str) -> None:
        self.add(n, Node(self.name(n), "act", [self.tensor(n.input[0])], (), dict(kind=kind)))

    def pool(self, n, mode: str) -> None:
        a = self.attrs(n)
        if a.get("ceil_mode", 0):
            return self.reject(n, "ceil_mode=1")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
            return self.reject(n, f"auto_pad={a['auto_pad']!r} (give explicit pads)")
        if len(n.output) > 1 and n.output[1]:
            return self.reject(n, "pooling indices output")
        k = tuple(int(v) for v in a["kernel_shape"])
        if len(k) != 2:
            return self.reject(n, f"{len(k)}-D pooling (only 2-D)")
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if pads[:2] != pads[2:]:
            return self.reject(n, f"asymmetric padding {pads}")
        attrs = dict(mode=mode, kernel=k, stride=tuple(a.get("strides", [1, 1])), padding=(int(pads[0]), int(pads[1])),
                     dilation=tuple(a.get("dilations", [1, 1])), count_include_pad=bool(a.get("count_include_pad", 0)))
        self.add(n, Node(self.name(n), "pool", [self.tensor(n.input[0])], (), attrs))

    def global_pool(self, n, mode: str) -> None:
        x = self.tensor(n.input[0])
        shape = self.shape(x)
        if len(shape) != 4:
            return self.reject(n, f"global pooling of a {len(shape)}-D tensor")
        attrs = dict(mode=mode, kernel=shape[2:], stride=shape[2:], padding=(0, 0), dilation=(1, 1),
                     count_include_pad=True)
        self.add(n, Node(self.name(n), "pool", [x], (), attrs))

    def flatten_to(self, n, out_shape: tuple[int, ...]) -> None:
        x = self.tensor(n.input[0])
        src = self.shape(x)
        if out_shape == src:
            return self.alias(n, n.input[0])
        if len(out_shape) != 2 or out_shape[0] != src[0] or out_shape[1] != int(np.prod(src[1:])):
            return self.reject(n, f"reshape {src} -> {out_shape} (only flattening each sample)")
        if len(src) == 2:
            return self.alias(n, n.input[0])
        self.add(n, Node(self.name(n), "flatten", [x], (), dict(source_shape=src)))

    def flatten(self, n) -> None:
        axis = self.attrs(n).get("axis", 1)
        src = self.shape(self.tensor(n.input[0]))
        axis = axis + len(src) if axis < 0 else axis
        self.flatten_to(n, (int(np.prod(src[:axis])), int(np.prod(src[axis:]))))

    def reshape(self, n) -> None:
        target = self.const(n.input[1])
        if target is None:
            return self.reject(n, "a shape that is not constant")
        src = self.shape(self.tensor(n.input[0]))
        allowzero = self.attrs(n).get("allowzero", 0)
        t = [src[i] if (v == 0 and not allowzero) else int(v) for i, v in enumerate(target.tolist())]
        if t.count(-1) == 1:
            t[t.index(-1)] = int(np.prod(src)) // int(np.prod([v for v in t if v != -1]))
        self.flatten_to(n, tuple(t))

    def batchnorm(self, n) -> None:
        a = self.attrs(n)
        params = [self.const(i) for i in n.input[1:5]]
        if any(p is None for p in params) or a.get("training_mode", 0):
            return self.reject(n, "BatchNormalization needs constant parameters and inference mode")
        gamma, beta, mean, var = (p.astype(np.float64) for p in params)
        s = gamma / np.sqrt(var + a.get("epsilon", 1e-5))
        shift = beta - mean * s
        node = self.fusable(n.input[0], ("conv", "linear"))
        if node is None:
            x = self.tensor(n.input[0])
            if len(self.shape(x)) != 4:
                return self.reject(n, "BatchNormalization of a non-4-D tensor that follows no conv/linear layer")
            c = s.shape[0]
            attrs = dict(kernel=(1, 1), stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=c)
            return self.add(n, Node(self.name(n), "conv", [x], (), attrs, s.reshape(c, 1, 1, 1), shift))
        node.weight = node.weight * s.reshape(-1, *([1] * (node.weight.ndim - 1)))
        node.bias = (node.bias if node.bias is not None else np.zeros_like(s)) * s + shift
        self.refresh(node, n)

    def quantize(self, n) -> None:
        """QuantizeLinear: a constant folds; on an activation it waits for its DequantizeLinear."""
        scale, zp = self.const(n.input[1]), self.const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if scale is None or (len(n.input) > 2 and n.input[2] and zp is None):
            return self.reject(n, "non-constant scale or zero point")
        x = self.value.get(n.input[0])
        if isinstance(x, _Const):
            dtype = zp.dtype if zp is not None else np.uint8
            info = np.iinfo(dtype)
            q = np.clip(np.rint(x.value / scale) + (zp if zp is not None else 0), info.min, info.max).astype(dtype)
            self.value[n.output[0]] = _Const(q)
            return
        if scale.size != 1:
            return self.reject(n, "per-channel activation quantization (only one scale per tensor)")
        zp = np.zeros((), np.uint8) if zp is None else zp
        if zp.dtype not in (np.uint8, np.int8):
            return self.reject(n, f"{zp.dtype} activations (only uint8 / int8)")
        # The pair's qparams as a uint8 tensor: an int8 code q is the uint8 code q + 128.
        self.value[n.output[0]] = ("quantized", n.input[0], float(scale.reshape(())),
                                   int(zp.reshape(())) + (128 if zp.dtype == np.int8 else 0))

    def dequantize(self, n) -> None:
        v = self.value.get(n.input[0])
        if isinstance(v, tuple) and v[0] == "quantized":
            _, src, scale, zp = v
            ir = self.tensor(src)
            if ir is not None:
                self.fixed_qparams[ir] = (scale, zp)
                # A pair with zero point 0 clamps at 0: quantizers drop the Relu before one, so the
                # conv, linear or add that alone feeds it takes the Relu back (its float output too).
                node = self.fusable(src, ("conv", "linear", "add")) if zp == 0 else None
                if node is not None:
                    node.clamp = (0.0, float("inf"))
                    return self.refresh(node, n)
            self.alias(n, src)
            return
        q = self.const(n.input[0])
        scale = self.const(n.input[1])
        zp = self.const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if q is None or scale is None:
            return self.reject(n, "DequantizeLinear of something other than a constant or a QuantizeLinear")
        axis = self.attrs(n).get("axis", 1)
        shape = [1] * q.ndim
        if scale.size > 1:
            shape[axis] = -1
        zp = np.zeros(1) if zp is None else zp.astype(np.float64).reshape(shape)
        self.value[n.output[0]] = _Const((q.astype(np.float64) - zp) * scale.astype(np.float64).reshape(shape))

    def shape_op(self, n) -> None:
        ir = self.tensor(n.input[0])
        c = self.const(n.input[0])
        shape = self.shape(ir) if ir is not None else c.shape
        a = self.attrs(n)
        self.value[n.output[0]] = _Const(np.array(shape[a.get("start", 0):a.get("end", len(shape))], np.int64))

    def fold(self, n) -> bool:
        """Folds an op on constants (shape arithmetic); False if its inputs are not all constant."""
        ins = [self.const(i) if i else None for i in n.input]
        if any(v is None for i, v in zip(n.input, ins) if i):
            return False
        a, op = self.attrs(n), n.op_type
        if op == "Gather":
            out = np.take(ins[0], ins[1], axis=a.get("axis", 0))
        elif op == "Unsqueeze":
            out = ins[0]
            for ax in sorted(int(v) for v in ins[1].reshape(-1)):
                out = np.expand_dims(out, ax)
        elif op == "Squeeze":
            out = np.squeeze(ins[0], tuple(int(v) for v in ins[1].reshape(-1))) if len(ins) > 1 else np.squeeze(ins[0])
        elif op == "Concat":
            out = np.concatenate([np.atleast_1d(v) for v in ins], axis=a.get("axis", 0))
        elif op == "Cast":
            out = ins[0].astype(self.onnx.helper.tensor_dtype_to_np_dtype(a["to"]))
        elif op in ("Mul", "Add", "Sub", "Div"):
            f = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Div": np.divide}[op]
            out = f(ins[0], ins[1])
            if op == "Div" and np.issubdtype(ins[0].dtype, np.integer):
                out = np.floor_divide(ins[0], ins[1])
        elif op == "Slice":
            starts, ends = ins[1], ins[2]
            axes = ins[3] if len(ins) > 3 and ins[3] is not None else np.arange(len(starts))
            steps = ins[4] if len(ins) > 4 and ins[4] is not None else np.ones(len(starts), np.int64)
            idx = [slice(None)] * ins[0].ndim
            for s, e, ax, st in zip(starts, ends, axes, steps):
                idx[int(ax)] = slice(int(s), int(e), int(st))
            out = ins[0][tuple(idx)]
        elif op == "Reshape":
            out = ins[0].reshape(ins[1])
        elif op == "QuantizeLinear":
            return False
        else:
            return False
        self.value[n.output[0]] = _Const(np.asarray(out))
        return True

    # ------------------------------------------------------------ dispatch
    HANDLERS = {
        "Conv": "conv", "Gemm": "gemm", "MatMul": "matmul", "Add": "add_op", "Clip": "clip",
        "Sigmoid": "sigmoid", "Mul": "mul", "Concat": "concat", "Flatten": "flatten", "Reshape": "reshape",
        "BatchNormalization": "batchnorm", "QuantizeLinear": "quantize", "DequantizeLinear": "dequantize",
    }

    def concat(self, n) -> None:
        ins = [self.tensor(i) for i in n.input]
        axis = self.attrs(n).get("axis", 0)
        if len(self.shape(ins[0])) != 4 or axis not in (1, -3):
            return self.reject(n, "concatenation other than along channels of 4-D tensors")
        self.add(n, Node(self.name(n), "concat", ins, ()))

    def convert(self, n) -> None:
        op = n.op_type
        if op == "Constant":
            a = self.attrs(n)
            if "value" not in a:
                return self.reject(n, "a Constant other than a tensor value")
            self.value[n.output[0]] = _Const(self.numpy_helper.to_array(a["value"]))
        elif op == "Shape":
            self.shape_op(n)
        elif self.fold(n):
            pass
        elif any(i and self.value.get(i, 0) is None for i in n.input):
            # Downstream of an unsupported op: report this op too only if it is unsupported itself.
            if op not in self.HANDLERS and op not in self.SIMPLE:
                self.reject(n, "unsupported op")
            for o in n.output:
                self.value[o] = None
        elif op in ("Identity", "Dropout"):
            self.alias(n, n.input[0])
        elif op not in self.HANDLERS and op not in self.SIMPLE:
            self.reject(n, "unsupported op")
        elif op not in self.ANY_INPUTS and any(self.tensor(i) is None for i in self.data_inputs(n)):
            self.reject(n, "an input that is a constant or not a tensor mixq computes")
        else:
            try:
                if op in self.HANDLERS:
                    getattr(self, self.HANDLERS[op])(n)
                else:
                    self.SIMPLE[op](self, n)
            except (KeyError, IndexError, ValueError, TypeError, RuntimeError) as e:  # malformed attributes
                self.reject(n, f"cannot convert it ({type(e).__name__}: {e})")

    # Ops that take constants or pending values (a QuantizeLinear, a Sigmoid) as well as tensors.
    ANY_INPUTS = ("Add", "Mul", "QuantizeLinear", "DequantizeLinear")

    @staticmethod
    def data_inputs(n) -> list[str]:
        """The inputs that must be computed tensors (weights, biases and bounds are constants)."""
        return list(n.input) if n.op_type == "Concat" else [n.input[0]]

    SIMPLE = {
        "Relu": lambda self, n: self.clamp(n, 0.0, float("inf")),
        "HardSwish": lambda self, n: self.activation(n, "hardswish"),
        "MaxPool": lambda self, n: self.pool(n, "max"),
        "AveragePool": lambda self, n: self.pool(n, "avg"),
        "GlobalAveragePool": lambda self, n: self.global_pool(n, "avg"),
        "GlobalMaxPool": lambda self, n: self.global_pool(n, "max"),
        "Identity": lambda self, n: self.alias(n, n.input[0]),
        "Dropout": lambda self, n: self.alias(n, n.input[0]),
    }

    def run(self) -> tuple[Graph, dict]:
        inits = {i.name for i in self.g.initializer}
        inputs = [i for i in self.g.input if i.name not in inits]
        if len(inputs) != 1:
            raise UnsupportedModelError(f"mixq compiles models with one input tensor; this one has {len(inputs)}: "
                                        f"{[i.name for i in inputs]}")
        if len(self.g.output) != 1:
            raise UnsupportedModelError(f"mixq compiles models with one output tensor; this one has "
                                        f"{len(self.g.output)}: {[o.name for o in self.g.output]}")
        import torch

        inp = inputs[0]
        x = torch.as_tensor(np.asarray(self.example, dtype=np.float32))
        node = Node(inp.name, "input", [], tuple(x.shape))
        node.source = inp.name
        self.nodes.append(node)
        self.by_name[inp.name] = node
        self.example_value[inp.name] = x
        self.value[inp.name] = inp.name
        with torch.no_grad():
            for n in self.g.node:
                if n.domain not in ("", "ai.onnx"):
                    self.reject(n, f"an op of domain {n.domain!r}")
                    continue
                self.convert(n)
        out = self.g.output[0].name
        if self.unsupported:
            raise UnsupportedModelError("mixq cannot compile this model; unsupported ONNX nodes (name (op type)):\n  "
                                        + "\n  ".join(self.unsupported))
        if self.tensor(out) is None:
            raise UnsupportedModelError(f"the model's output {out!r} is a constant or not a tensor mixq computes")
        graph = Graph(self.nodes, inp.name, self.tensor(out))
        _check_flatten_consumers(graph)
        return graph, self.fixed_qparams


def example_shape(model) -> tuple[int, ...]:
    """The model input's shape with batch 1 where the batch (or any dimension) is symbolic."""
    inits = {i.name for i in model.graph.initializer}
    inp = [i for i in model.graph.input if i.name not in inits][0]
    dims = inp.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in dims)


def capture_onnx(source, example_input=None) -> tuple[Graph, dict, object]:
    """Reads an ONNX model (path, bytes or ModelProto) -> (graph, fixed qparams by node name, model).

    example_input: an NCHW batch (any batch size) or None for the file's input shape at batch 1.
    """
    model = load_onnx(source)
    if example_input is None:
        shape = example_shape(model)
        if len(shape) != 4:
            raise UnsupportedModelError(f"the model's input has shape {shape}; mixq compiles NCHW image models")
        example_input = np.zeros(shape, np.float32)
    example = np.asarray(example_input, dtype=np.float32)
    if example.ndim != 4:
        raise ValueError(f"example input must be a 4-D NCHW batch, got shape {example.shape}")
    graph, fixed = _Converter(model, example).run()
    return graph, fixed, model
