"""The layer cost model: FLOPs, bytes, arithmetic intensity and roofline time of every plan op.

Definitions (the AIQ paper's): a conv/linear of output depth N, reduction depth K and M output
pixels does FLOPs = 2·M·N·K (a multiply-add is two ops, int8 or float alike); its weight bytes
are codes + scales + zero points + bias at its precision, without packing padding
(`weight_bytes`); activation bytes are its input and output tensors at their dtype (1 byte for
uint8, 4 for float32). AI = FLOPs / bytes, reported weight-only and with activations; model AI
= Σ FLOPs / Σ bytes. Roofline time = max(FLOPs / compute roof(precision), bytes / DRAM bandwidth).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ...quant import parse_precision
from .machine import Machine


def weight_bytes(n_out: int, k: int, precision: str, bias: bool = True) -> int:
    """Bytes of an [n_out, k] weight at `precision`: codes, scales, zero points, bias."""
    return parse_precision(precision).weight_bytes(n_out, k, bias)


@dataclass
class OpCost:
    name: str
    kind: str
    precision: str
    in_shape: tuple
    out_shape: tuple
    flops: float
    weight_bytes: int
    act_bytes: int            # inputs + output
    predicted_s: float
    bound: str                # "compute" | "memory" | "-" (no arithmetic)
    measured_s: float | None = None

    @property
    def bytes(self) -> int:
        return self.weight_bytes + self.act_bytes

    @property
    def ai_weights(self) -> float:
        return self.flops / self.weight_bytes if self.weight_bytes else 0.0

    @property
    def ai(self) -> float:
        return self.flops / self.bytes if self.bytes else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(bytes=self.bytes, ai_weights=self.ai_weights, ai=self.ai)
        return d


def _tensor_bytes(t: dict, batch: int) -> int:
    h, w, c = t["shape"]
    return batch * h * w * c * (1 if t["dtype"] == "uint8" else 4)


def op_cost(op: dict, tensors: list[dict], batch: int, machine: Machine | None) -> OpCost:
    tin = [tensors[i] for i in op["inputs"]]
    tout = tensors[op["output"]]
    oh, ow, oc = tout["shape"]
    ih, iw, ic = tin[0]["shape"]
    kind, precision = op["kind"], op.get("precision", "fp32" if tout["dtype"] == "float32" else "w8a8")
    has_bias = "bias" in op
    flops, wbytes = 0.0, 0
    if kind == "conv":
        k = ih * iw * ic if op["flatten_input"] else op["kernel"][0] * op["kernel"][1] * ic // op["groups"]
        m = batch if op["flatten_input"] else batch * oh * ow
        flops = 2.0 * m * oc * k
        n_g = oc // (1 if op["flatten_input"] else op["groups"])
        wbytes = (1 if op["flatten_input"] else op["groups"]) * weight_bytes(n_g, k, precision, False)
        wbytes += 4 * oc if has_bias else 0
        kind = "linear" if op["flatten_input"] else kind
    elif kind == "depthwise":
        kh, kw = op["kernel"]
        flops = 2.0 * batch * oh * ow * oc * kh * kw
        wbytes = weight_bytes(oc, kh * kw, precision, has_bias)
    elif kind in ("add", "pool", "act"):
        taps = op["kernel"][0] * op["kernel"][1] if kind == "pool" else 1
        flops = float(batch * oh * ow * oc * taps)
    act_bytes = sum(_tensor_bytes(t, batch) for t in tin) + _tensor_bytes(tout, batch)
    return _priced(op["name"], kind, precision, (ih, iw, ic), (oh, ow, oc), flops, wbytes, act_bytes, machine)


def _priced(name, kind, precision, in_shape, out_shape, flops, wbytes, act_bytes, machine) -> OpCost:
    """An OpCost with its roofline time and bound under `machine` (none without one)."""
    predicted, bound = 0.0, "-"
    arithmetic = kind in ("conv", "linear", "depthwise", "attention")
    if machine is not None:
        t_mem = (wbytes + act_bytes) / (machine.dram_read_gbs * 1e9)
        t_cmp = flops / machine.compute_roof(precision) if flops else 0.0
        predicted = max(t_mem, t_cmp)
        if arithmetic:
            bound = "compute" if t_cmp >= t_mem else "memory"
    return OpCost(name, kind, precision if arithmetic else "", tuple(in_shape), tuple(out_shape), flops, wbytes,
                  act_bytes, predicted, bound)


def plan_costs(spec: dict, batch: int, machine: Machine | None = None) -> list[OpCost]:
    """Costs of every op of a plan spec (Plan.spec) for a batch of `batch` samples."""
    return [op_cost(op, spec["tensors"], batch, machine) for op in spec["ops"]]


def encoder_costs(spec: dict, batch: int, seq: int, machine: Machine | None = None) -> list[OpCost]:
    """Costs of an encoder plan spec (EncoderPlan.spec) on `batch` sequences of `seq` tokens: each
    linear layer (int8-activation layers read their input as u8) and each layer's attention
    matmuls (QK^T and PV; int8 operands when that layer's attention is w8a8). Embeddings,
    norms and GELU are left out: element-wise, the same at every precision."""
    hidden, inter, heads = spec["hidden"], spec["intermediate"], spec["heads"]
    m, prec = batch * seq, spec["precisions"]
    shapes = {"attention.self.query": (hidden, hidden), "attention.self.key": (hidden, hidden),
              "attention.self.value": (hidden, hidden), "attention.output.dense": (hidden, hidden),
              "intermediate.dense": (inter, hidden), "output.dense": (hidden, inter)}
    costs = []
    for i in range(spec["layers"]):
        for local, (n, k) in shapes.items():
            name = f"encoder.layer.{i}.{local}"
            p = prec[name]
            a_in = parse_precision(p).entry.act_bytes
            costs.append(_priced(name, "linear", p, (m, k), (m, n), 2.0 * m * n * k, weight_bytes(n, k, p),
                                 m * k * a_in + m * n * 4, machine))
        name = f"encoder.layer.{i}.attention.matmul"
        p = prec[name]
        a = parse_precision(p).entry.act_bytes
        scores = batch * heads * seq * seq
        costs.append(_priced(name, "attention", p, (m, 3 * hidden), (m, hidden), 4.0 * scores * (hidden // heads), 0,
                             3 * m * hidden * a + scores * (4 + a) + m * hidden * 4, machine))
    return costs


def model_totals(costs: list[OpCost]) -> dict:
    """model_ai plus the roofline-predicted time of all ops."""
    t = model_ai(costs)
    t["predicted_s"] = sum(c.predicted_s for c in costs)
    return t


def model_ai(costs: list[OpCost]) -> dict:
    """Model arithmetic intensity: Σ FLOPs / Σ weight bytes, and / Σ (weight + activation) bytes."""
    flops = sum(c.flops for c in costs)
    wb = sum(c.weight_bytes for c in costs)
    ab = sum(c.act_bytes for c in costs)
    return dict(flops=flops, weight_bytes=wb, act_bytes=ab,
                ai_weights=flops / wb if wb else 0.0, ai=flops / (wb + ab) if wb + ab else 0.0)
