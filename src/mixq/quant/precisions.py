"""The precision table: one entry per precision a layer can run at, and everything the rest of
mixq needs to know about it (config parsing, packing, the oracle's fake quantization, the cost
model, the runtimes' modes). Nothing outside this module switches on bit widths or group sizes:
adding a precision is one entry here plus the kernels it names.

=========  ===========================  ======================================
name       weights                      activations into the layer
=========  ===========================  ======================================
fp32       float32                      float32
bf16       bfloat16                     float32 (converted to bf16 in the core)
w8a8       int8, per output channel     uint8, per tensor (asymmetric)
w7a8       int8 in [-64, 64], per chan  uint8
w4a8       int4, group-wise along K     uint8
w2a8       int2, group-wise along K     uint8
w4a32      int4, group-wise (weight-only)  float32
w2a32      int2, group-wise (weight-only)  float32
=========  ===========================  ======================================

A grouped precision takes a group size as ``w4a8-g128`` or ``{"precision": "w4a8",
"group_size": 128}``: one of ``GROUP_SIZES`` (default 128), or ``None``/``"channel"`` for one
group per output channel. Ops that have int8 and fp32 kernels only (depthwise convolutions,
attention matmuls, token embeddings) run at the entry's ``depthwise`` / ``attention`` /
``embedding`` precision; plans record what ran.

w7a8 stores int8 codes on the narrow symmetric range [-64, 64] (7 bits and a sign's worth: 129
levels): a u8 activation times such a code, summed in pairs, stays below 2^15, so CPUs without
VNNI multiply it with ``vpmaddubsw`` exactly, at twice the rate of the exact full-range path. It
runs, bit for bit the same, on every CPU. ``int8`` names the default int8 precision of this CPU
(``default_int8()``): w7a8 where that kernel runs, w8a8 elsewhere; plans record which it was.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ..ops.packed_weight import PackedWeight, check_finite, pack_float
from .weights import GROUP_SIZES, NARROW_INT8, WEIGHT_CODECS, round_bf16_finite

__all__ = ["Precision", "PRECISIONS", "LayerPrecision", "parse_precision", "default_int8", "resolve_candidates",
           "GROUP_SIZES",
           "DEFAULT_GROUP"]

DEFAULT_GROUP = 128


@dataclass(frozen=True)
class Precision:
    name: str
    weight_bits: int     # bits per stored weight (32 fp32, 16 bf16)
    act: str             # activations into the layer: "int8" (uint8 codes) or "fp32"
    grouped: bool        # weights quantized in groups along K (takes a group size)
    core_mode: str       # how the core runs a GEMM layer: "int8", "weight_only" or "float"
    roof: str            # the Machine field of the compute roof that bounds it
    depthwise: str       # precision of a depthwise conv (int8 and fp32 kernels only)
    attention: str       # precision of attention matmuls (int8 with int8 activations, else fp32)
    embedding: str       # precision of a token embedding table (int8 rows or fp32)
    description: str
    codec: object = None  # the weight codec (weights.py) of quantized weights, None for float

    @property
    def int8_activations(self) -> bool:
        return self.act == "int8"

    @property
    def act_bytes(self) -> int:
        """Bytes per activation value into the layer."""
        return 1 if self.act == "int8" else 4

    @property
    def quantized_weights(self) -> bool:
        return self.codec is not None


def _entry(name, bits, act, mode, roof, description, codec=None):
    codec = codec or WEIGHT_CODECS.get(bits)
    return Precision(name, bits, act, bool(codec and codec.grouped), mode, roof,
                     depthwise="w8a8" if act == "int8" else "fp32",
                     attention="w8a8" if act == "int8" else "fp32",
                     embedding="w8a8" if bits <= 8 else "fp32", description=description, codec=codec)


PRECISIONS: dict[str, Precision] = {p.name: p for p in (
    _entry("fp32", 32, "fp32", "float", "peak_fp32_gflops", "float32 weights and activations"),
    _entry("bf16", 16, "fp32", "float", "peak_bf16_gflops", "bfloat16 weights, fp32 accumulation"),
    _entry("w8a8", 8, "int8", "int8", "peak_int8_gops", "int8 weights per channel, uint8 activations"),
    _entry("w7a8", 8, "int8", "int8", "peak_int8_narrow_gops",
           "int8 weights per channel in [-64, 64] (exact on vpmaddubsw without VNNI), uint8 activations",
           codec=NARROW_INT8),
    _entry("w4a8", 4, "int8", "int8", "peak_int8_gops", "int4 weights per group, uint8 activations"),
    _entry("w2a8", 2, "int8", "int8", "peak_int8_gops", "int2 weights per group, uint8 activations"),
    _entry("w4a32", 4, "fp32", "weight_only", "peak_fp32_gflops", "int4 weights per group, fp32 activations"),
    _entry("w2a32", 2, "fp32", "weight_only", "peak_fp32_gflops", "int2 weights per group, fp32 activations"),
)}

_NAME = re.compile(r"^([a-z0-9]+)(?:-g(\d+|channel))?$")


@dataclass(frozen=True)
class LayerPrecision:
    """A table entry plus, for grouped precisions, the group size (None = per output channel)."""
    precision: str
    group_size: int | None = DEFAULT_GROUP

    @property
    def entry(self) -> Precision:
        return PRECISIONS[self.precision]

    @property
    def weight_bits(self) -> int:
        return self.entry.weight_bits

    @property
    def int8_activations(self) -> bool:
        return self.entry.int8_activations

    @property
    def low_bit(self) -> bool:
        return self.entry.grouped

    def group_for(self, k: int) -> int | None:
        """Group size used for a layer of depth k. A group as deep as the layer or deeper is one
        group per output channel (None). When k is not a multiple of the group, the group is halved
        (down to the smallest size) until it divides k: conv depths like 9*C_in would otherwise pad
        their last group with zeros (K=576 at group 128 would store 640 codes per column)."""
        g = self.group_size
        if not self.low_bit or g is None or g >= k:
            return None
        c = g
        while c > GROUP_SIZES[0] and k % c:
            c //= 2
        return c if k % c == 0 else g

    def at_depth(self, k: int) -> "LayerPrecision":
        """This precision as a layer of depth k runs it (the group group_for chooses)."""
        return LayerPrecision(self.precision, self.group_for(k)) if self.low_bit else self

    def for_kernel_set(self, op: str) -> "LayerPrecision":
        """The precision an op kind with int8 and fp32 kernels only runs at: 'depthwise',
        'attention' or 'embedding'."""
        return parse_precision(getattr(self.entry, op))

    def pack(self, w2d: np.ndarray) -> PackedWeight:
        """The packed weight of a float [N, K] weight, as plans store it."""
        e = self.entry
        w2d = np.ascontiguousarray(w2d, dtype=np.float32)
        if not e.quantized_weights:
            return pack_float(w2d, e.weight_bits)
        check_finite(w2d, "w")
        return e.codec.pack(*self.quantize(w2d))

    def quantize(self, w2d: np.ndarray):
        """(codes, scale, zero point, group) of a float [N, K] weight, as pack() quantizes it."""
        e = self.entry
        return e.codec.quantize(np.asarray(w2d, dtype=np.float32), self.group_for(w2d.shape[1]),
                                symmetric=not e.grouped)

    def fake_quant(self, w2d: np.ndarray) -> np.ndarray:
        """A float [N, K] weight as the packed weight represents it (float32)."""
        e = self.entry
        w2d = np.ascontiguousarray(w2d, dtype=np.float32)
        if e.weight_bits == 32:
            return w2d.copy()
        if not e.quantized_weights:
            return round_bf16_finite(w2d)
        q, s, z, group = self.quantize(w2d)
        return e.codec.dequantize(q, s, z, group, w2d.shape[1]).astype(np.float32)

    def weight_bytes(self, n_out: int, k: int, bias: bool = True) -> int:
        """Bytes of an [n_out, k] weight: codes, scales, zero points, bias (no packing padding)."""
        e = self.entry
        meta = 0
        if e.grouped:
            g = self.group_for(k) or k
            meta = 3 * n_out * math.ceil(k / g)   # bf16 scale + u8 zero point per group
        elif e.quantized_weights:
            meta = 4 * n_out                      # f32 scale per output channel
        return math.ceil(n_out * k * e.weight_bits / 8) + meta + (4 * n_out if bias else 0)

    def __str__(self) -> str:
        if not self.low_bit:
            return self.precision
        return f"{self.precision}-g{self.group_size or 'channel'}"


def default_int8() -> str:
    """The int8 precision this CPU runs fastest, exactly: w7a8 where the dispatcher has the narrow-code
    kernel (s7: vpmaddubsw, CPUs without VNNI), else w8a8 (full range; vpdpbusd or the reference)."""
    from .. import _core
    return "w7a8" if _core.cpu_info()["kernels"].get("s7", "none") != "none" else "w8a8"


def resolve_candidates(names) -> tuple:
    """Search candidates with the ``int8`` alias replaced by this CPU's default int8 precision."""
    return tuple(default_int8() if str(n).strip().lower() == "int8" else n for n in names)


def _choices() -> str:
    return (f"choose from {', '.join(PRECISIONS)}, or int8 (this CPU's default int8: {default_int8()}) (grouped ones optionally with -g<group size>, one of "
            f"{', '.join(map(str, GROUP_SIZES))} or 'channel', e.g. w4a8-g128)")


def _group(value, name: str):
    if value in (None, "channel"):
        return None
    if isinstance(value, bool) or value not in GROUP_SIZES:
        raise ValueError(f"group_size of {name} must be one of {GROUP_SIZES} or None / 'channel' (one group per "
                         f"output channel), got {value!r}")
    return int(value)


def parse_precision(value) -> LayerPrecision:
    """'w8a8', 'w4a8-g32', {'precision': 'w4a8', 'group_size': 64} or a LayerPrecision."""
    if isinstance(value, LayerPrecision):
        return value
    if isinstance(value, dict):
        unknown = set(value) - {"precision", "group_size"}
        if unknown or "precision" not in value:
            raise ValueError(f"a layer precision dict has keys 'precision' and optional 'group_size', got {sorted(value)}")
        base = parse_precision(value["precision"])
        if not base.low_bit:
            if value.get("group_size") is not None:
                raise ValueError(f"{base.precision} has no group size")
            return base
        return LayerPrecision(base.precision, _group(value.get("group_size", base.group_size), base.precision))
    if isinstance(value, str) and value.strip().lower() == "int8":
        value = default_int8()
    m = _NAME.match(value.strip().lower()) if isinstance(value, str) else None
    if m is None or m.group(1) not in PRECISIONS:
        raise ValueError(f"unknown precision {value!r}; {_choices()}")
    entry, group = PRECISIONS[m.group(1)], m.group(2)
    if not entry.grouped:
        if group is not None:
            raise ValueError(f"{entry.name} has no group size")
        return LayerPrecision(entry.name, None)
    if group is None:
        return LayerPrecision(entry.name, DEFAULT_GROUP)
    return LayerPrecision(entry.name, _group(group if group == "channel" else int(group), entry.name))
