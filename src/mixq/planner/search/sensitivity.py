"""Per-layer sensitivity scores for the sensitivity-order baseline (and for pruning searches).

- :func:`hutchinson_trace`: the Hessian trace of the loss with respect to each layer's weight
  (HAWQ-v2 style), estimated with Hutchinson's method; needs torch (imported lazily).
- :func:`weight_sqnr`: signal-to-quantization-noise ratio of each layer's weights at a
  precision, with the same quantizers the packed weights use (numpy only).
- :func:`perturbation_scores`: mean Hessian trace times the squared weight quantization
  error, HAWQ-v2's sensitivity of a layer at a given precision.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping

import numpy as np

__all__ = ["hutchinson_trace", "weight_sqnr", "perturbation_scores", "fake_quant_layer_weight"]


def _as_numpy(w) -> np.ndarray:
    if hasattr(w, "detach"):  # a torch tensor, without importing torch
        w = w.detach().cpu().numpy()
    return np.asarray(w)


def fake_quant_layer_weight(w, precision, channels_last: bool = False) -> np.ndarray:
    """A layer weight ``[out, ...]`` as ``precision`` represents it (float32, same shape).

    fp32: unchanged; bf16: rounded to bfloat16 (nearest, ties to even); 8-bit: symmetric per
    output channel; 4/2-bit: asymmetric groups of the precision's group size along the
    flattened ``[out, -1]`` rows (``LayerPrecision.group_for`` adapts the group to the depth,
    as the runtime does). ``channels_last=True`` first permutes a 4-D conv weight
    ``[out, in, kh, kw]`` to ``[out, kh, kw, in]``: the order in which the mixq runtime packs
    conv weights, hence the groups it really uses.
    """
    from ...quant import parse_precision

    p = parse_precision(precision)
    w = _as_numpy(w)
    if not np.issubdtype(w.dtype, np.floating):
        raise TypeError(f"a weight must be a float array, got {w.dtype}")
    if w.ndim < 2:
        raise ValueError(f"a layer weight has at least 2 dimensions [out, ...], got shape {w.shape}")
    shape = w.shape
    w = w.astype(np.float32)
    if channels_last and w.ndim == 4:
        w = w.transpose(0, 2, 3, 1)
    w2 = np.ascontiguousarray(w.reshape(w.shape[0], -1))
    q2 = p.fake_quant(w2)
    q = q2.reshape(w.shape)
    if channels_last and len(shape) == 4:
        q = q.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(q, dtype=np.float32)


def _sqnr_db(w: np.ndarray, q: np.ndarray) -> float:
    w64 = w.astype(np.float64)
    signal = float(np.sum(w64 * w64))
    noise = float(np.sum((w64 - q.astype(np.float64)) ** 2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def weight_sqnr(weights: Mapping[str, np.ndarray], precision, channels_last: bool = False) -> dict[str, float]:
    """SQNR in dB, ``10·log10(Σw² / Σ(w − Q(w))²)``, of each layer's weight fake-quantized at
    ``precision`` (see :func:`fake_quant_layer_weight` for the quantizers). Higher = less
    damage. inf when the quantization is exact (fp32, or weights already on the grid).
    ``weights``: {name: numpy array or torch tensor of shape [out, ...]}."""
    return {name: _sqnr_db(_as_numpy(w).astype(np.float32), fake_quant_layer_weight(w, precision, channels_last))
            for name, w in weights.items()}


def perturbation_scores(traces: Mapping[str, float], weights: Mapping[str, np.ndarray], precision,
                        channels_last: bool = False) -> dict[str, float]:
    """HAWQ-v2 sensitivity ``mean_trace · ||Q(w) − w||²`` of each layer at ``precision``
    (mean_trace as returned by :func:`hutchinson_trace`, i.e. per weight element, times the
    number of elements gives the full trace; the product estimates the second-order loss
    increase up to a constant). Layers in ``traces`` missing from ``weights`` raise KeyError."""
    out = {}
    for name, t in traces.items():
        w = _as_numpy(weights[name]).astype(np.float32)
        q = fake_quant_layer_weight(w, precision, channels_last)
        out[name] = float(t) * float(np.sum((w.astype(np.float64) - q) ** 2))
    return out


def hutchinson_trace(model, layer_names: Iterable[str], batches: Iterable, loss_fn: Callable,
                     samples: int = 8, seed: int = 0) -> dict[str, float]:
    """Hessian trace of the loss with respect to each named module's ``weight``, divided by
    the number of weight elements (so layers of different sizes compare).

    Hutchinson: ``tr(H) = E[vᵀ H v]`` over Rademacher vectors v (entries ±1). Per batch the
    gradient g is taken once with ``create_graph=True``; then per sample and per layer l one
    Hessian-vector product of the diagonal block, ``H_ll v = ∂(g_lᵀ v)/∂w_l``
    (``torch.autograd.grad`` with ``grad_outputs=v``). Probing each block on its own (rather
    than one joint vector for all layers, whose cross-layer terms have zero mean but add
    variance) costs one HVP per layer and sample. The result is the average over ``samples``
    vectors and over the batches.

    model: a torch.nn.Module, run in eval mode (its mode and requires_grad flags are
    restored afterwards). batches: iterable of ``(inputs, targets)`` pairs -- loss is
    ``loss_fn(model(inputs), targets)`` -- or of bare inputs -- loss is
    ``loss_fn(model(inputs))``; numpy arrays are converted to tensors. Deterministic for a
    given seed (the vectors come from a torch.Generator seeded with it).
    """
    import torch

    names = list(layer_names)
    if not names:
        raise ValueError("layer_names is empty")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ValueError(f"no module named {missing} in the model; modules are e.g. {list(modules)[1:6]}")
    params = []
    for n in names:
        w = getattr(modules[n], "weight", None)
        if not isinstance(w, torch.Tensor) or not w.is_floating_point():
            raise ValueError(f"module {n!r} has no float weight")
        params.append(w)

    def tensor(x):
        if isinstance(x, torch.Tensor):
            return x
        if isinstance(x, np.ndarray):
            return torch.from_numpy(x)
        return x

    was_training = model.training
    flags = [p.requires_grad for p in params]
    gen = torch.Generator().manual_seed(int(seed))
    totals = [0.0] * len(params)
    n_batches = 0
    try:
        model.eval()
        for p in params:
            p.requires_grad_(True)
        for batch in batches:
            if isinstance(batch, (tuple, list)) and len(batch) == 2:
                out = model(tensor(batch[0]))
                loss = loss_fn(out, tensor(batch[1]))
            else:
                loss = loss_fn(model(tensor(batch)))
            if loss.dim() != 0:
                raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
            grads = torch.autograd.grad(loss, params, create_graph=True)
            for _ in range(samples):
                for i, (p, g) in enumerate(zip(params, grads)):
                    v = (torch.randint(0, 2, p.shape, generator=gen) * 2 - 1).to(p.dtype)
                    if not g.requires_grad:  # the loss is linear in this weight: zero block
                        continue
                    (hv,) = torch.autograd.grad(g, p, grad_outputs=v, retain_graph=True, allow_unused=True)
                    if hv is not None:
                        totals[i] += float(torch.sum(hv.detach() * v))
            n_batches += 1
            del grads, loss
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
        model.train(was_training)
    if n_batches == 0:
        raise ValueError("batches is empty")
    return {n: totals[i] / (samples * n_batches * params[i].numel()) for i, n in enumerate(names)}
