"""The fake-quant oracle: a plan spec simulated in PyTorch float64 with fake quantization at
exactly the points where the plan quantizes (weights as packed, uint8 tensors on their grids).

The plan's integer kernels accumulate exactly and apply one float32 epilogue; the oracle
computes in float64. They agree up to float rounding, which can move a value across a
rounding boundary, one quantization step of a uint8 tensor at a time. The tested bound on a
network's output (docs/runtime.md): max |plan - oracle| <= 5 % of max |oracle|, top-1
agreement >= 99 %.
"""
from __future__ import annotations

import numpy as np

from ...quant import fake_quant, parse_precision
from .lower import ACT_KIND, PlanSpec
from .pack import depthwise_codes


def simulate(spec: PlanSpec, x: np.ndarray) -> np.ndarray:
    """Runs the spec on NCHW float input x; returns what Plan.run returns (float64)."""
    import torch
    import torch.nn.functional as F

    T = spec.tensors
    vals: dict[int, torch.Tensor] = {spec.input: torch.as_tensor(np.asarray(x, dtype=np.float32)).double()}

    def finish(t_id: int, y: torch.Tensor) -> None:
        t = T[t_id]
        if t["dtype"] == "uint8":
            y = torch.from_numpy(fake_quant(y.float().numpy(), t["scale"], t["zero_point"], "uint8")).double()
        vals[t_id] = y

    acts = {ACT_KIND["silu"]: F.silu, ACT_KIND["hardswish"]: F.hardswish, ACT_KIND["sigmoid"]: torch.sigmoid}
    for op in spec.ops:
        kind, ins = op["kind"], [vals[i] for i in op["inputs"]]
        lo, hi = op.get("lo", -np.inf), op.get("hi", np.inf)
        bias = torch.from_numpy(spec.arrays[op["bias"]]).double() if "bias" in op else None
        if kind == "conv":
            w = spec.arrays[op["weight"]]
            kh, kw = op["kernel"]
            if op["flatten_input"]:
                xin = ins[0].permute(0, 2, 3, 1).reshape(ins[0].shape[0], -1)
                wq = torch.from_numpy(parse_precision(op["precision"]).fake_quant(w[0])).double()
                y = (xin @ wq.T)[:, :, None, None]
            else:
                g = op["groups"]
                wq = np.stack([parse_precision(op["precision"]).fake_quant(w[i]) for i in range(g)])
                cin_g = w.shape[2] // (kh * kw)
                wt = torch.from_numpy(wq.reshape(g * w.shape[1], kh, kw, cin_g)).double().permute(0, 3, 1, 2)
                y = F.conv2d(ins[0], wt, None, op["stride"], op["padding"], op["dilation"], g)
            if bias is not None:
                y = y + bias.view(1, -1, 1, 1)
            if len(ins) > 1:  # fused residual
                y = y + ins[1]
            finish(op["output"], y.clamp(lo, hi))
        elif kind == "depthwise":
            w = spec.arrays[op["weight"]]
            if parse_precision(op["precision"]).entry.quantized_weights:
                codes, scale = depthwise_codes(w, op["precision"])
                w = codes.astype(np.float32) * scale
            wt = torch.from_numpy(np.ascontiguousarray(w.transpose(2, 0, 1)[:, None])).double()
            y = F.conv2d(ins[0], wt, bias, op["stride"], op["padding"], op["dilation"], w.shape[2])
            finish(op["output"], y.clamp(lo, hi))
        elif kind == "add":
            finish(op["output"], (ins[0] + ins[1]).clamp(lo, hi))
        elif kind == "concat":
            finish(op["output"], torch.cat(ins, dim=1))
        elif kind == "pool":
            if op["is_max"]:
                y = F.max_pool2d(ins[0], op["kernel"], op["stride"], op["padding"], op["dilation"])
            else:
                y = F.avg_pool2d(ins[0], op["kernel"], op["stride"], op["padding"],
                                 count_include_pad=op["count_include_pad"])
            finish(op["output"], y)
        elif kind == "convert":
            finish(op["output"], ins[0])
        elif kind == "act":
            y = ins[0].clamp(lo, hi) if op["act"] == ACT_KIND["clamp"] else acts[op["act"]](ins[0])
            finish(op["output"], y)
        else:
            raise ValueError(f"oracle: unknown op kind {kind!r}")
    y = vals[spec.output]
    if spec.output_layout == "flat":
        return y.reshape(y.shape[0], -1).numpy()
    return y.numpy()
