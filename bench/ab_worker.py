"""One side of bench/ab.py: builds the A/B cases with whichever mixq its interpreter imports and
times blocks of calls on request. Speaks one JSON line per request on stdin/stdout; uses only
mixq's public API and mixq.models, which both builds of an A/B share."""
from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

import mixq  # noqa: E402

DRAM_BYTES = 160 << 20  # decode cases cycle through this many bytes of weights: past a 32 MB L3


def gemm_cases(quick: bool) -> dict:
    rng = np.random.default_rng(0)
    cases = {}
    shapes = [(2048, 2048, 2048), (128, 4096, 4096), (3136, 64, 576)]
    for m, n, k in shapes if not quick else shapes[:2]:
        w = rng.standard_normal((n, k)).astype(np.float32)
        xu8 = rng.integers(0, 256, (m, k), dtype=np.uint8)
        xf = rng.standard_normal((m, k)).astype(np.float32)
        p8 = mixq.pack_weights(w, bits=8)
        cases[f"gemm w8a8 {m}x{n}x{k}"] = lambda x=xu8, p=p8: mixq.matmul(x, p, x_scale=0.02, x_zero_point=128)
        p4 = mixq.pack_weights(w, bits=4, group_size=128)
        cases[f"gemm w4a8-g128 {m}x{n}x{k}"] = lambda x=xf, p=p4: mixq.matmul(x, p)
        p32 = mixq.pack_weights(w, bits=32)
        cases[f"gemm fp32 {m}x{n}x{k}"] = lambda x=xf, p=p32: mixq.matmul(x, p)
    return cases


def gemv_cases(quick: bool) -> dict:
    rng = np.random.default_rng(1)
    cases = {}
    for n, k in [(4096, 4096)] if quick else [(4096, 4096), (11008, 4096)]:
        x = rng.standard_normal((1, k)).astype(np.float32)
        for label, kw, bytes_per in (("w8a8", dict(bits=8), 1.0), ("w4a8-g128", dict(bits=4, group_size=128), 0.5)):
            count = max(4, int(DRAM_BYTES / (n * k * bytes_per)))
            w = rng.standard_normal((n, k)).astype(np.float32)
            packed = [mixq.pack_weights(w + i * 1e-3, **kw) for i in range(count)]
            state = {"i": 0}

            def run(x=x, packed=packed, state=state):
                state["i"] = (state["i"] + 1) % len(packed)
                return mixq.matmul(x, packed[state["i"]])
            cases[f"gemv {label} {n}x{k}"] = run
    return cases


def cnn_cases(quick: bool) -> dict:
    import torch
    from mixq.models import zoo

    cases = {}
    models = [("resnet50", lambda: zoo.resnet50(), (3, 224, 224), (1, 8)),
              ("mobilenet_v2", lambda: zoo.mobilenet_v2(), (3, 224, 224), (1, 8)),
              ("resnet20", lambda: zoo.resnet20(), (1, 28, 28), (1, 64))]
    for name, build, shape, batches in models:
        torch.manual_seed(0)
        model = build().eval()
        g = torch.Generator().manual_seed(0)
        calib = [torch.randn(8, *shape, generator=g) for _ in range(2)]
        plan = mixq.compile(model, calib[0], "w8a8", calibration=calib, progress=False)
        for bs in batches[:1] if quick else batches:
            x = np.random.default_rng(bs).standard_normal((bs, *shape)).astype(np.float32)
            cases[f"{name} bs{bs} w8a8"] = lambda x=x, plan=plan: plan.run(x)
    return cases


def encoder_cases(quick: bool) -> dict:
    import torch
    from mixq.models import bert_large

    torch.manual_seed(0)
    model = bert_large(num_layers=4).eval()
    ids = np.random.default_rng(0).integers(1000, 20000, (8, 128))
    cases = {}
    for precision in ("w8a8",) if quick else ("w8a8", "fp32"):
        plan = mixq.compile_encoder(model, precision)
        for bs in (1, 8):
            cases[f"bert-large(4 layers) seq128 bs{bs} {precision}"] = lambda x=ids[:bs], plan=plan: plan.run(x)
    return cases


def decoder_cases(quick: bool) -> dict:
    """The TinyLlama-shaped decoder of bench/llm.py (22 layers, random weights): an 8-token prompt
    then 64 decode steps, so the GEMVs, attention and per-token overheads dominate."""
    from llm import mixq_plan, random_weights
    from mixq.models.llama import tiny_llama_1b

    cfg = tiny_llama_1b(num_layers=22, max_position_embeddings=512)
    weights = random_weights(cfg)
    prompt = np.random.default_rng(1).integers(0, cfg.vocab_size, size=8)
    cases = {}
    for precision in ("w4a8-g128",) if quick else ("w8a8", "w4a8-g128", "w2a8-g64"):
        plan = mixq_plan(cfg, weights, precision)[0]
        cases[f"tinyllama decode 8+64 {precision}"] = lambda plan=plan: plan.generate(prompt, 64)
    return cases


GROUPS = {"gemm": gemm_cases, "gemv": gemv_cases, "cnn": cnn_cases, "encoder": encoder_cases,
          "decoder": decoder_cases}


def main() -> None:
    cases: dict = {}
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "setup":
            mixq.set_num_threads(req["threads"])
            for group in req["groups"]:
                cases.update(GROUPS[group](req["quick"]))
            for fn in cases.values():
                fn()  # warm-up: packing, arenas, worker threads
            out = {"cases": list(cases), "version": getattr(mixq, "__file__", "")}
        elif req["op"] == "run":
            fn, times = cases[req["case"]], []
            for _ in range(req["calls"]):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            out = {"times": times}
        else:
            break
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
