"""The float forward pass of a captured `Graph` in PyTorch: every node's value in turn.

Frontends without a torch module to run (ONNX, torch.export programs) use it to find each
node's output shape while they build the graph, and calibration uses it to observe every
node's output. BatchNorm is already folded and clamps fused, so values are the ones the plan's
tensors hold.
"""
from __future__ import annotations

from .graph import Graph, Node


def node_forward(node: Node, ins: list):
    """The output of `node` (a float torch tensor) given its inputs' values."""
    import torch
    import torch.nn.functional as F

    lo, hi = node.clamp
    if node.op == "conv":
        a = node.attrs
        w = torch.as_tensor(node.weight, dtype=ins[0].dtype)
        b = None if node.bias is None else torch.as_tensor(node.bias, dtype=ins[0].dtype)
        y = F.conv2d(ins[0], w, b, a["stride"], a["padding"], a["dilation"], a["groups"])
    elif node.op == "linear":
        w = torch.as_tensor(node.weight, dtype=ins[0].dtype)
        y = ins[0] @ w.T
        if node.bias is not None:
            y = y + torch.as_tensor(node.bias, dtype=ins[0].dtype)
    elif node.op == "add":
        y = ins[0] + ins[1]
    elif node.op == "concat":
        y = torch.cat(ins, dim=1)
    elif node.op == "pool":
        a = node.attrs
        if a["mode"] == "max":
            y = F.max_pool2d(ins[0], a["kernel"], a["stride"], a["padding"], a["dilation"])
        else:
            y = F.avg_pool2d(ins[0], a["kernel"], a["stride"], a["padding"], count_include_pad=a["count_include_pad"])
    elif node.op == "act":
        kind = node.attrs["kind"]
        if kind == "clamp":
            y = ins[0]
        else:
            y = {"silu": F.silu, "hardswish": F.hardswish, "sigmoid": torch.sigmoid}[kind](ins[0])
    elif node.op == "flatten":
        return ins[0].reshape(ins[0].shape[0], -1)
    else:
        raise ValueError(f"cannot run op {node.op!r} ({node.name})")
    if (lo, hi) != (float("-inf"), float("inf")):
        y = y.clamp(lo, hi)
    return y


def run_graph(graph: Graph, x, on_value=None):
    """Runs `graph` on the NCHW float tensor x; calls on_value(node, value) for every node."""
    values = {graph.input: x}
    if on_value is not None:
        on_value(graph[graph.input], x)
    for node in graph.nodes:
        if node.op in ("input", "output"):
            continue
        values[node.name] = node_forward(node, [values[i] for i in node.inputs])
        if on_value is not None:
            on_value(node, values[node.name])
    return values[graph.output]
