"""Evaluate a zoo checkpoint on Fashion-MNIST.

    python -m mixq.models.evaluate --model resnet20 [--checkpoint PATH] [--threads T]

Scores the full 10 000-image test set when it is installed and checks the
result against the accuracy recorded in the checkpoint's metadata; otherwise
scores the shipped 2 000-image subset and reports it next to the recorded
full-test accuracy.  Exit status 1 if the accuracy is off by more than the
tolerance (default 0.1 pp on the full set, 1.5 pp on the subset).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..data import fashion_mnist, find_fashion_mnist, preprocess


def accuracy(model, images: np.ndarray, labels: np.ndarray, batch_size: int = 500, channels_last: bool = False) -> float:
    """Top-1 accuracy (fraction) of ``model`` on uint8 images [N, 28, 28]."""
    import torch

    was_training = model.training
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(preprocess(images[i : i + batch_size]))
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            pred = model(x).argmax(1).numpy()
            correct += int((pred == labels[i : i + batch_size]).sum())
    model.train(was_training)
    return correct / len(images)


def main(argv=None) -> int:
    import torch

    from . import registry

    ap = argparse.ArgumentParser(prog="python -m mixq.models.evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, choices=registry.available())
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="a .safetensors file (its .json metadata beside it); default: the shipped one")
    ap.add_argument("--root", default=None, help="directory with the Fashion-MNIST IDX files")
    ap.add_argument("--subset", action="store_true", help="score the shipped subset even if the full set exists")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tolerance", type=float, default=None, help="allowed |measured - recorded| in pp")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.checkpoint is None:
        try:
            model = registry.get(args.model, pretrained=True)
        except registry.CheckpointNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        meta = registry.checkpoint_metadata(args.model)
        ckpt = registry.info(args.model).checkpoint
    else:
        ckpt = args.checkpoint
        meta = json.loads(ckpt.with_suffix(".json").read_text())
        model = registry.info(args.model).builder(**meta.get("model_kwargs", {}))
        registry.load_checkpoint(model, ckpt)
    model.eval()

    full = not args.subset and find_fashion_mnist("test", args.root) is not None
    split = "test" if full else "test-subset"
    images, labels = fashion_mnist(split, args.root)
    t0 = time.perf_counter()
    acc = 100.0 * accuracy(model, images, labels)
    dt = time.perf_counter() - t0
    recorded = meta.get("test_accuracy")
    tol = args.tolerance if args.tolerance is not None else (0.1 if full else 1.5)
    print(f"model       {args.model}  ({ckpt})")
    note = "" if full or args.subset else "  (full test set not installed: apt-get install dataset-fashion-mnist)"
    print(f"data        {split}: {len(images)} images{note}")
    print(f"accuracy    {acc:.2f} %  ({dt:.1f} s)")
    if recorded is None:
        print("recorded    none in metadata")
        return 0
    diff = acc - recorded
    ok = abs(diff) <= tol
    print(f"recorded    {recorded:.2f} % on the full test set; difference {diff:+.2f} pp "
          f"({'OK' if ok else 'MISMATCH'}, tolerance {tol} pp)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
