"""Per-layer precision config: plain data (dict / JSON) that the planner produces.

A config maps layer names (module paths, e.g. ``layer1.0.conv2``) or fnmatch patterns
(``layer4.*``) to a precision; unmatched layers get the default. Precisions:

=========  ===========================  ======================================
name       weights                      activations into the layer
=========  ===========================  ======================================
fp32       float32                      float32
bf16       bfloat16                     float32 (converted to bf16 in the core)
w8a8       int8, per output channel     uint8, per tensor (asymmetric)
w4a8       int4, group-wise along K     uint8
w2a8       int2, group-wise along K     uint8
w4a32      int4, group-wise (weight-only)  float32
w2a32      int2, group-wise (weight-only)  float32
=========  ===========================  ======================================

A low-bit precision takes a group size as ``w4a8-g128`` or ``{"precision": "w4a8",
"group_size": 128}`` (default 128; ``None``/``"channel"`` = one group per output channel).
Depthwise convolutions have int8 and fp32 kernels only: a low-bit precision runs them at
w8a8 (int8 activations) or fp32 (weight-only); the plan records what ran.
"""
from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass

PRECISIONS = ("fp32", "bf16", "w8a8", "w4a8", "w2a8", "w4a32", "w2a32")
DEFAULT_GROUP = 128
_NAME = re.compile(r"^(fp32|bf16|w8a8|w4a8|w2a8|w4a32|w2a32)(?:-g(\d+|channel))?$")


@dataclass(frozen=True)
class LayerPrecision:
    precision: str
    group_size: int | None = DEFAULT_GROUP  # low-bit only; None = per output channel

    @property
    def weight_bits(self) -> int:
        return {"fp32": 32, "bf16": 16}.get(self.precision) or int(self.precision[1])

    @property
    def int8_activations(self) -> bool:
        return self.precision.endswith("a8")

    @property
    def low_bit(self) -> bool:
        return self.weight_bits in (2, 4)

    def group_for(self, k: int) -> int | None:
        """Group size used for a layer of depth k. A group as deep as the layer or deeper is one
        group per output channel (None). When k is not a multiple of the group, the group is halved
        (down to 32) until it divides k: conv depths like 9*C_in would otherwise pad their last
        group with zeros (K=576 at group 128 would store 640 codes per column)."""
        g = self.group_size
        if g is None or g >= k:
            return None
        if k % g == 0:
            return g
        c = g
        while c > 32 and k % c:
            c //= 2
        return c if k % c == 0 else g

    def __str__(self) -> str:
        if not self.low_bit:
            return self.precision
        return f"{self.precision}-g{self.group_size or 'channel'}"


def parse_precision(value) -> LayerPrecision:
    """'w8a8', 'w4a8-g32', {'precision': 'w4a8', 'group_size': 64} or a LayerPrecision."""
    if isinstance(value, LayerPrecision):
        return value
    if isinstance(value, dict):
        unknown = set(value) - {"precision", "group_size"}
        if unknown or "precision" not in value:
            raise ValueError(f"a layer precision dict has keys 'precision' and optional 'group_size', got {sorted(value)}")
        base = parse_precision(value["precision"])
        group = value.get("group_size", base.group_size)
        group = None if group in (None, "channel") else group
        if group is not None and (not isinstance(group, int) or group <= 0 or group % 16):
            raise ValueError(f"group_size must be a positive multiple of 16 or None, got {group!r}")
        return LayerPrecision(base.precision, group if base.low_bit else None)
    if not isinstance(value, str) or not (m := _NAME.match(value.strip().lower())):
        raise ValueError(f"unknown precision {value!r}; choose from {', '.join(PRECISIONS)} "
                         "(low-bit ones optionally with -g<group size>, e.g. w4a8-g128)")
    name, group = m.group(1), m.group(2)
    low_bit = name[1] in "24" and name.startswith("w")
    if group is not None and not low_bit:
        raise ValueError(f"{name} has no group size")
    if not low_bit:
        return LayerPrecision(name, None)
    if group is None:
        return LayerPrecision(name, DEFAULT_GROUP)
    return parse_precision({"precision": name, "group_size": None if group == "channel" else int(group)})


class QuantConfig:
    """Default precision plus per-layer overrides (exact names first, then patterns in order)."""

    def __init__(self, default="w8a8", layers: dict | None = None):
        self.default = parse_precision(default)
        self.layers = {str(k): parse_precision(v) for k, v in (layers or {}).items()}

    @classmethod
    def from_any(cls, config) -> "QuantConfig":
        """None (fp32), a precision name, a dict ({'default': ..., 'layers': {...}}), a JSON
        string/path content, or a QuantConfig."""
        if config is None:
            return cls("fp32")
        if isinstance(config, QuantConfig):
            return config
        if isinstance(config, (str, LayerPrecision)) and not str(config).lstrip().startswith("{"):
            return cls(config)
        if isinstance(config, str):
            config = json.loads(config)
        if not isinstance(config, dict):
            raise TypeError(f"config must be a precision name, dict or QuantConfig, got {type(config).__name__}")
        unknown = set(config) - {"default", "layers"}
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; expected 'default' and 'layers'")
        return cls(config.get("default", "w8a8"), config.get("layers"))

    def precision_of(self, layer: str) -> LayerPrecision:
        if layer in self.layers:
            return self.layers[layer]
        for pattern, p in self.layers.items():
            if fnmatch.fnmatchcase(layer, pattern):
                return p
        return self.default

    def check_names(self, layer_names) -> None:
        """Every override must name (or match) a layer: a typo must not silently do nothing."""
        names = list(layer_names)
        dead = [k for k in self.layers if k not in names and not fnmatch.filter(names, k)]
        if dead:
            raise ValueError(f"config names no layer of the model: {dead}; layers are e.g. {names[:5]}")

    def to_dict(self) -> dict:
        return {"default": str(self.default), "layers": {k: str(v) for k, v in self.layers.items()}}

    def __repr__(self) -> str:
        return f"QuantConfig({self.to_dict()})"
