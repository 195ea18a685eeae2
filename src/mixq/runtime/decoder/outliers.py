"""LLM.int8()-style outlier channels: the input channels of an int8-activation GEMM whose
calibrated max |x| exceeds a threshold run in fp32, the rest in int8.

A few hidden channels of a trained transformer carry activations 10-100x the others; a per-token
int8 scale set by them leaves the other channels a handful of codes. Splitting them out
(Dettmers et al. 2022) keeps the int8 scale to the ordinary channels, at the price of a small fp32
GEMM over |O| channels. The plan stores, per GEMM, the channels (``{gemm}.outliers``, int32,
sorted) and their fp32 weight columns (``{gemm}.outlier_weight``, [N, |O|]); its int8 weight is
packed with those columns zeroed (so its scales come from the rest too).
"""
from __future__ import annotations

import math

import numpy as np

from .layout import FINAL_NORM, LM_HEAD

# At most this share of a GEMM's input channels become outliers (the largest first): a
# threshold set too low must not turn the int8 GEMM into an fp32 one.
MAX_OUTLIER_FRACTION = 0.05


def check_threshold(threshold) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating, np.integer)):
        raise TypeError(f"outlier_threshold must be a number, got {type(threshold).__name__}")
    t = float(threshold)
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"outlier_threshold must be finite and > 0, got {threshold!r}")
    return t


def calibration_batches(calibration, vocab: int, max_positions: int) -> list[np.ndarray]:
    """Calibration token ids as int64 [batch, seq] arrays: one sequence (1-D), one batch (2-D), or
    a list of either. Raises on no tokens, non-integer ids, ids outside the vocabulary, too long."""
    if isinstance(calibration, (list, tuple)) and calibration and not np.isscalar(calibration[0]):
        items = list(calibration)
    else:
        items = [calibration]
    batches = []
    for i, item in enumerate(items):
        a = np.asarray(item)
        if a.size == 0:
            raise ValueError(f"calibration batch {i} is empty: give at least one token id")
        if a.dtype.kind not in "iu":
            raise TypeError(f"calibration batch {i}: token ids must be integers, got dtype {a.dtype}")
        if a.ndim == 1:
            a = a[None]
        if a.ndim != 2:
            raise ValueError(f"calibration batch {i}: token ids must be [seq] or [batch, seq], got shape {a.shape}")
        if a.min() < 0 or a.max() >= vocab:
            bad = int(a[(a < 0) | (a >= vocab)][0])
            raise ValueError(f"calibration batch {i}: token id {bad} is outside the vocabulary [0, {vocab})")
        if a.shape[1] > max_positions:
            raise ValueError(f"calibration batch {i}: {a.shape[1]} tokens exceed the model's context of "
                             f"{max_positions} positions")
        batches.append(np.ascontiguousarray(a, dtype=np.int64))
    return batches


def input_absmax(model, names: list[str], batches: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-input-channel max |x| (float32) of the named linears of a torch LlamaForCausalLM over
    the batches, recorded by hooks on the fp32 model. The output head's input is the final norm's
    output (a tied head is no module of its own)."""
    import torch

    amax: dict[str, torch.Tensor] = {}

    def record(name, x):
        m = x.detach().float().abs().reshape(-1, x.shape[-1]).amax(0)
        amax[name] = m if name not in amax else torch.maximum(amax[name], m)

    handles = []
    for n in names:
        if n == LM_HEAD:
            hook = (lambda n: lambda _m, _inputs, out: record(n, out))(n)
            handles.append(model.get_submodule(FINAL_NORM).register_forward_hook(hook))
        else:
            hook = (lambda n: lambda _m, inputs: record(n, inputs[0]))(n)
            handles.append(model.get_submodule(n).register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            for ids in batches:
                model(torch.as_tensor(ids))
    finally:
        for h in handles:
            h.remove()
    return {k: v.numpy() for k, v in amax.items()}


def select_outliers(amax: np.ndarray, threshold: float, max_fraction: float = MAX_OUTLIER_FRACTION) -> np.ndarray:
    """The channels with amax > threshold, at most floor(max_fraction * K) (at least 1) of them,
    the largest kept; sorted ascending, int32."""
    over = np.flatnonzero(amax > threshold)
    cap = max(1, int(max_fraction * amax.size))
    if over.size > cap:
        over = over[np.argsort(-amax[over], kind="stable")[:cap]]
    return np.sort(over).astype(np.int32)


def find_outliers(model, gemms, calibration, threshold: float, vocab: int, max_positions: int) -> dict[str, np.ndarray]:
    """{GEMM stored name: its outlier channels} of the GEMMs given as (name, linears) pairs (the
    int8-activation ones), calibrated on the fp32 torch model; GEMMs without outliers are left out.
    The linears of one GEMM share its input: the first one's is recorded."""
    batches = calibration_batches(calibration, vocab, max_positions)
    amax = input_absmax(model, [parts[0] for _, parts in gemms], batches)
    found = {name: select_outliers(amax[parts[0]], threshold) for name, parts in gemms}
    return {name: cols for name, cols in found.items() if cols.size}


def split_weight(w: np.ndarray, cols: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(the weight the int8 GEMM packs: columns `cols` zeroed, their fp32 columns [N, |cols|]);
    (w, None) without outliers. The plan and the oracle both split this way."""
    if cols is None or len(cols) == 0:
        return w, None
    w = np.asarray(w, dtype=np.float32)
    out = np.ascontiguousarray(w[:, cols])
    rest = w.copy()
    rest[:, cols] = 0.0
    return rest, out
