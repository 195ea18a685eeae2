"""Train a zoo model on Fashion-MNIST and write a checkpoint + metadata.

    python -m mixq.models.train --model resnet20 --epochs 15 --seed 0 [--threads 1] [--out DIR]

SGD with Nesterov momentum under a one-cycle LR schedule (cosine warm-up then
cosine anneal), label smoothing, weight decay on conv/linear weights only,
pad-2 random-crop + horizontal-flip augmentation, channels_last tensors.
Everything random is derived from ``--seed``; with the same seed, thread count
and torch build the run is repeatable.  Writes ``DIR/<model>.safetensors`` and
``DIR/<model>.json`` (test accuracy on the full 10 000-image test set, epochs,
seed, training time, torch version, LR schedule, ...).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

from ..data import MEAN, STD, fashion_mnist, loader
from . import registry
from .evaluate import accuracy


def _param_groups(model, weight_decay):
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim > 1 else no_decay).append(p)  # BN affine + biases are 1-D
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mixq.models.train", description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True,
                    choices=[n for n in registry.available() if registry.info(n).dataset == "fashion-mnist"])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--out", type=Path, default=Path("out"), help="output directory (default ./out)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=0.2, help="peak learning rate of the one-cycle schedule")
    ap.add_argument("--pct-start", type=float, default=0.25, help="fraction of steps spent warming up")
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--width-mult", type=float, default=None, help="MobileNetV2 width multiplier")
    ap.add_argument("--eval-every", type=int, default=0,
                    help="also score the test set every N epochs for monitoring (0: only at the end)")
    ap.add_argument("--max-batches", type=int, default=0,
                    help="stop each epoch after N batches (smoke tests / cost measurement)")
    ap.add_argument("--root", default=None, help="directory with the Fashion-MNIST IDX files")
    ap.add_argument("--no-channels-last", action="store_true")
    args = ap.parse_args(argv)

    import torch
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    channels_last = not args.no_channels_last

    train_x, train_y = fashion_mnist("train", args.root)
    test_x, test_y = fashion_mnist("test", args.root)

    model_kwargs = {}
    if args.width_mult is not None:
        model_kwargs["width_mult"] = args.width_mult
    model = registry.get(args.model, **model_kwargs)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    n_params = sum(p.numel() for p in model.parameters())

    batches = loader("train", args.batch_size, seed=args.seed, drop_last=True,
                     channels_last=channels_last, data=(train_x, train_y))
    steps_per_epoch = len(batches) if not args.max_batches else min(len(batches), args.max_batches)
    total_steps = steps_per_epoch * args.epochs
    opt = torch.optim.SGD(_param_groups(model, args.weight_decay), lr=args.lr, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=total_steps, pct_start=args.pct_start,
        anneal_strategy="cos", div_factor=25.0, final_div_factor=1e4)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)

    print(f"training {args.model} ({n_params:,} params) on {len(train_x)} images: {args.epochs} epochs x "
          f"{steps_per_epoch} steps, batch {args.batch_size}, {args.threads} thread(s), seed {args.seed}", flush=True)
    history = []
    t_start = time.perf_counter()
    cpu_start = time.process_time()
    for epoch in range(args.epochs):
        model.train()
        t_ep = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{args.epochs}",
                   unit="batch", mininterval=10.0, file=sys.stderr, dynamic_ncols=True)
        for step, (x, y) in enumerate(bar):
            if step >= steps_per_epoch:
                break
            logits = model(x)
            loss = criterion(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(y)
            correct += int((logits.detach().argmax(1) == y).sum())
            seen += len(y)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}",
                                lr=f"{sched.get_last_lr()[0]:.4f}")
        bar.close()
        rec = {"epoch": epoch + 1, "train_loss": round(loss_sum / seen, 4),
               "train_accuracy": round(100 * correct / seen, 2), "seconds": round(time.perf_counter() - t_ep, 1)}
        if not math.isfinite(rec["train_loss"]):
            print("training diverged (non-finite loss)", file=sys.stderr)
            return 1
        last = epoch + 1 == args.epochs
        if args.eval_every and not last and (epoch + 1) % args.eval_every == 0:
            rec["test_accuracy_monitor"] = round(100 * accuracy(model, test_x, test_y, channels_last=channels_last), 2)
        history.append(rec)
        print(json.dumps(rec), flush=True)
    train_seconds = time.perf_counter() - t_start
    train_cpu_seconds = time.process_time() - cpu_start

    model.eval()
    test_acc = 100 * accuracy(model, test_x, test_y, channels_last=channels_last)
    sub_x, sub_y = fashion_mnist("test-subset")
    subset_acc = 100 * accuracy(model, sub_x, sub_y, channels_last=channels_last)
    print(f"test accuracy {test_acc:.2f} % (full 10 000), subset {subset_acc:.2f} %, "
          f"training time {train_seconds / 60:.1f} min", flush=True)

    from safetensors.torch import save_file

    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / f"{args.model}.safetensors"
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights), metadata={"model": args.model})
    info = registry.info(args.model)
    meta = {
        "model": args.model,
        "model_kwargs": model_kwargs,
        "parameters": n_params,
        "dataset": "fashion-mnist",
        "input_shape": list(info.input_shape),
        "preprocess": {"scale": "x / 255", "mean": MEAN, "std": STD, "layout": "NCHW float32"},
        "test_accuracy": round(test_acc, 2),
        "test_images": len(test_x),
        "subset_accuracy": round(subset_acc, 2),
        "epochs": args.epochs,
        "max_batches_per_epoch": args.max_batches or None,
        "seed": args.seed,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "optimizer": {"name": "SGD", "momentum": 0.9, "nesterov": True, "weight_decay": args.weight_decay,
                      "weight_decay_on": "conv/linear weights only"},
        "lr_schedule": {"name": "OneCycleLR", "max_lr": args.lr, "pct_start": args.pct_start,
                        "anneal_strategy": "cos", "div_factor": 25.0, "final_div_factor": 1e4,
                        "total_steps": total_steps},
        "label_smoothing": args.label_smoothing,
        "augmentation": "zero-pad 2 + random 28x28 crop, random horizontal flip",
        "channels_last": channels_last,
        "training_seconds": round(train_seconds, 1),
        "training_cpu_seconds": round(train_cpu_seconds, 1),
        "history": history,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "weights_file": weights.name,
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "command": "python -m mixq.models.train " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    (args.out / f"{args.model}.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {weights} ({weights.stat().st_size / 1e6:.2f} MB) and {args.out / (args.model + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
