"""Held-out perplexity of the shipped decoder at each precision, run by mixq's decoder plans.

    python -m mixq.models.eval_llm [--configs fp32 w8a8 w4a8-g128 w2a8-g64] [--json PATH]
                                   [--outlier-threshold 6.0 [--calibration-windows 32]]

For every config: perplexity over the held-out fortunes (consecutive windows of ``--window``
tokens, each a fresh sequence, as the training script scores), and next-token top-1 agreement
with the fp32 plan on the same positions. The fp32 torch model is scored too (the plan must
match it). With --outlier-threshold, every int8-activation config is scored a second time with
outlier channels (compile_decoder's calibration + outlier_threshold), calibrated on windows of the
*training* split, so the held-out score stays held out.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

DEFAULT_CONFIGS = ["fp32", "w8a8", "w4a8-g128", "w4a8-g32", "w4a32-g128", "w2a8-g64", "w2a32-g64"]
WINDOW = 128  # tokens per scored window, as the training script scores
CALIBRATION_WINDOWS = 32  # training-split windows that calibrate outlier channels


def heldout_ids(tok) -> np.ndarray:
    from ..data.text_corpus import fortune_documents
    from .train_llm import token_stream

    return token_stream(tok, fortune_documents("heldout"))


def calibration_ids(tok, windows: int, window: int) -> np.ndarray:
    """[windows, window] token ids from the start of the training split (for outlier channels)."""
    from ..data.text_corpus import fortune_documents
    from .train_llm import token_stream

    docs, need = fortune_documents("train"), windows * window
    stream, n = np.zeros(0, np.int64), 64
    while stream.size < need and n < 2 * len(docs):
        stream, n = token_stream(tok, docs[:n]), 2 * n
    return stream[:need].reshape(windows, window)


def _window_logits(plan, ids: np.ndarray, window: int):
    """(logits of every scored position, their targets), window by window."""
    for s in range(0, ids.size - 1, window):
        chunk = ids[s: s + window + 1]
        if chunk.size < 2:
            break
        yield plan.logits(chunk[:-1]), chunk[1:]


def score(plan, ids: np.ndarray, window: int, ref_top1: list | None = None):
    """(perplexity, top-1 predictions per window, agreement with ref_top1 or None)."""
    nll, count, top1, agree = 0.0, 0, [], 0
    for i, (lg, tgt) in enumerate(_window_logits(plan, ids, window)):
        lg = lg.astype(np.float64)
        mx = lg.max(axis=1)
        lse = mx + np.log(np.exp(lg - mx[:, None]).sum(axis=1))
        nll += float((lse - lg[np.arange(tgt.size), tgt]).sum())
        count += tgt.size
        top1.append(lg.argmax(axis=1))
        if ref_top1 is not None:
            agree += int((top1[-1] == ref_top1[i]).sum())
    return math.exp(nll / count), top1, (agree / count if ref_top1 is not None else None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mixq.models.eval_llm", description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    ap.add_argument("--window", type=int, default=WINDOW)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--outlier-threshold", type=float, default=None,
                    help="also score each int8-activation config with outlier channels at this threshold")
    ap.add_argument("--calibration-windows", type=int, default=CALIBRATION_WINDOWS,
                    help="training-split windows of --window tokens that calibrate the outlier channels")
    args = ap.parse_args(argv)

    import torch

    from .. import compile_decoder, cpu_info
    from .llm import llm_metadata, load_llm
    from .train_llm import perplexity as torch_perplexity

    model, tok = load_llm()
    ids = heldout_ids(tok)
    with torch.no_grad():
        torch_ppl = torch_perplexity(model, ids, args.window)
    print(f"held-out: {ids.size} tokens; torch fp32 perplexity {torch_ppl:.3f} "
          f"(recorded at training: {llm_metadata()['heldout_perplexity']:.3f})")
    rows, ref = [], None
    print(f"{'config':<20}{'perplexity':>12}{'vs fp32':>10}{'top-1 agree':>13}{'weights MB':>12}")
    from ..quant import parse_precision

    runs = []
    for name in ["fp32"] + [c for c in args.configs if c != "fp32"]:
        runs.append((name, {}))
        if args.outlier_threshold is not None and parse_precision(name).int8_activations:
            calib = calibration_ids(tok, args.calibration_windows, args.window)
            runs.append((f"{name}+outliers", dict(calibration=calib, outlier_threshold=args.outlier_threshold)))
    for name, extra in runs:
        plan = compile_decoder(model, name.split("+")[0], **extra)
        ppl, top1, agree = score(plan, ids, args.window, ref)
        if ref is None:
            ref, fp32_ppl = top1, ppl
        row = dict(config=name, perplexity=ppl, rel_to_fp32=ppl / fp32_ppl - 1,
                   top1_agreement=1.0 if agree is None else agree, weight_bytes=plan.weight_bytes)
        if extra:
            found = plan.outlier_channels()
            row.update(outlier_threshold=args.outlier_threshold, outlier_channels=plan.meta["outlier_channels"],
                       outliers_per_gemm={k: int(v.size) for k, v in found.items()})
        rows.append(row)
        print(f"{name:<20}{ppl:>12.3f}{100 * row['rel_to_fp32']:>9.2f}%{100 * row['top1_agreement']:>12.2f}%"
              f"{plan.weight_bytes / 1e6:>12.2f}" + (f"   {row['outlier_channels']} outlier channels" if extra else ""))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(machine=dict(cpu=cpu_info()["isa"]), heldout_tokens=int(ids.size),
                                             window=args.window, torch_fp32_perplexity=torch_ppl, results=rows),
                                        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
