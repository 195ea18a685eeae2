"""What the narrow int8 range costs in accuracy: w7a8 (weights in [-64, 64], the default int8 on
CPUs without VNNI) against full-range w8a8 and fp32, on real data.

  python bench/int8_accuracy.py [--quick] [--json PATH]

- ResNet-20 and MobileNetV2-small (the shipped Fashion-MNIST checkpoints): top-1 on the full
  Fashion-MNIST test set (10 000 images; --quick: the first 2 000), calibrated on 8 x 64 training
  images (seeded).
- MiniLM-L6 (all-MiniLM-L6-v2's real weights): sentence embeddings of 1 000 real sentences
  (mixq.data.sentences; --quick: 200) against torch fp32: mean cosine and top-1 retrieval agreement;
  calibrated on 2 x 8 other sentences (SmoothQuant ranges), as bench/bert.py.
Accuracy does not depend on the CPU: the plans compute the same integers on every ISA path.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from harness import mixq_api  # noqa: E402
from harness.machine import machine_info  # noqa: E402

CONFIGS = ("fp32", "w8a8", "w7a8")
CNN_MODELS = ("resnet20", "mobilenet_v2_small")


def cnn_rows(quick: bool) -> list[dict]:
    import torch

    import mixq

    images, labels = mixq_api.fashion_mnist("test")
    train, _ = mixq_api.fashion_mnist("train")
    n = 2000 if quick else len(images)
    x, y = mixq_api.preprocess(images[:n]), labels[:n]
    rng = np.random.default_rng(0)
    calibration = [mixq_api.preprocess(train[rng.choice(len(train), 64, replace=False)]) for _ in range(8)]
    rows = []
    for name in CNN_MODELS:
        model = mixq_api.registry().get(name, pretrained=True)
        for config in CONFIGS:
            plan = mixq.compile(model, torch.from_numpy(x[:1]), config, calibration=calibration, progress=False)
            logits = np.concatenate([plan.run(x[i:i + 1000]) for i in range(0, n, 1000)])
            top1 = 100.0 * float((logits.argmax(1) == y).mean())
            rows.append({"case": f"{name} fashion-mnist test[{n}]", "impl": f"mixq-{config}", "top1": top1})
            print(f"{name:20s} {config:6s} top-1 {top1:.2f} %", flush=True)
    return rows


def minilm_rows(quick: bool) -> list[dict]:
    import torch

    import mixq

    model, _ = mixq_api.load_minilm()
    tok = mixq_api.minilm_tokenizer()
    texts = mixq_api.sentences()
    n = 200 if quick else 1000
    batches = mixq_api.tokenized_batches(tok, texts[-n:])
    calibration = []
    for b in range(2):  # 2 batches of 8 sentences from the start (none is among the evaluated ones)
        enc = tok(texts[8 * b:8 * b + 8], max_length=128)
        calibration.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})

    def torch_run(ids, mask):
        with torch.inference_mode():
            return model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()

    ref = mixq_api.pooled_embeddings(batches, torch_run)
    rows = []
    for config in CONFIGS:
        plan = mixq.compile_encoder(model, config, calibration)
        emb = mixq_api.pooled_embeddings(batches, lambda ids, mask, p=plan: p.run(ids, mask))
        a = mixq_api.embedding_agreement(ref, emb)
        rows.append({"case": f"minilm sentences[{n}]", "impl": f"mixq-{config}", **a})
        print(f"minilm {config:6s} mean cosine {a['mean_cosine']:.5f}, top-1 retrieval agreement "
              f"{100 * a['top1_retrieval_agreement']:.1f} %", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 000 test images, 200 sentences")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    rows = cnn_rows(args.quick) + minilm_rows(args.quick)
    for case in dict.fromkeys(r["case"] for r in rows):
        by = {r["impl"]: r for r in rows if r["case"] == case}
        if "top1" in by["mixq-w8a8"]:
            print(f"{case}: w7a8 - w8a8 = {by['mixq-w7a8']['top1'] - by['mixq-w8a8']['top1']:+.2f} pp top-1")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine_info(mixq_api.num_threads()), "results": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
