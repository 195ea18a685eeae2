"""Per-layer precision config: plain data (dict / JSON) that the planner produces.

A config maps layer names (module paths, e.g. ``layer1.0.conv2``) or fnmatch patterns
(``layer4.*``) to a precision of the precision table (``mixq.quant.precisions``: fp32, bf16,
w8a8, w7a8, w4a8-g128, ...; ``int8`` is this CPU's default int8); unmatched layers get the default.
"""
from __future__ import annotations

import fnmatch
import json

from .precisions import LayerPrecision, parse_precision

__all__ = ["QuantConfig", "LayerPrecision", "parse_precision"]


class QuantConfig:
    """Default precision plus per-layer overrides (exact names first, then patterns in order)."""

    def __init__(self, default="int8", layers: dict | None = None):
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
        return cls(config.get("default", "int8"), config.get("layers"))

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
