"""The runtime's model graph: plain data (numpy weights), independent of torch.

A captured model is a list of `Node`s in execution order. Shapes are PyTorch's (N, C, H, W)
or (N, F); the plan later lays tensors out NHWC. BatchNorm is already folded into the
preceding conv/linear, and clamp activations (ReLU, ReLU6, Hardtanh) into their producer.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Ops a node can be. conv covers grouped and depthwise convolutions; linear is a conv on a
# flattened sample; pool covers max/avg/global average; act is a non-clamp activation.
OPS = ("input", "conv", "linear", "add", "concat", "pool", "act", "flatten", "output")
# Non-clamp activations the core computes (ActKind in plan_ops.h has the same order).
ACTIVATIONS = ("silu", "hardswish", "sigmoid")
UNBOUNDED = (float("-inf"), float("inf"))


@dataclass
class Node:
    name: str                      # module path (or fx node name for functions)
    op: str
    inputs: list[str]
    shape: tuple[int, ...]         # output shape with the example batch size
    attrs: dict = field(default_factory=dict)
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    clamp: tuple[float, float] = UNBOUNDED  # fused activation bounds
    source: str = ""               # the fx node whose output equals this node's (calibration)

    @property
    def is_layer(self) -> bool:
        """Nodes with weights: the ones a precision config talks about."""
        return self.op in ("conv", "linear")

    @property
    def is_depthwise(self) -> bool:
        return (self.op == "conv" and self.attrs["groups"] > 1
                and self.attrs["groups"] == self.shape[1] == self.weight.shape[0] and self.weight.shape[1] == 1)


@dataclass
class Graph:
    nodes: list[Node]
    input: str
    output: str

    def __post_init__(self):
        self._by_name = {n.name: n for n in self.nodes}

    def __getitem__(self, name: str) -> Node:
        return self._by_name[name]

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]

    def layers(self) -> list[Node]:
        return [n for n in self.nodes if n.is_layer]
