"""Train the shipped small Llama-style decoder on Debian's fortunes and write its files.

    python -m mixq.models.train_llm --minutes 30 --threads 2 [--out DIR]

1. A byte-level BPE tokenizer (``tokenizers``, vocab 4096, special ``<|endoftext|>`` = 0) is
   trained on the training documents (:func:`mixq.data.text_corpus.fortune_documents`).
2. The documents are tokenized and joined by ``<|endoftext|>`` into one stream; random windows
   of ``--seq`` + 1 tokens are the batches.
3. AdamW, linear warm-up then cosine decay to 10 %, gradient clipping at 1; the schedule's
   progress is the larger of steps done / ``--steps`` and time spent / ``--minutes``, so the
   learning rate decays fully however fast the (shared) machine is; a run is repeatable only
   when the step count bounds it.
4. Weights are rounded to bfloat16 (the file is half the size; the model *is* those values)
   and held-out perplexity is measured on the rounded model.

Writes ``DIR/llm_fortunes.safetensors``, ``DIR/llm_fortunes.tokenizer.json`` and
``DIR/llm_fortunes.json`` (config, held-out perplexity, steps, tokens seen, time, seed).
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np

from ..data.text_corpus import fortune_documents
from .llama import LlamaConfig, LlamaForCausalLM

NAME = "llm_fortunes"
EOT = "<|endoftext|>"

SMALL_CONFIG = LlamaConfig(vocab_size=4096, hidden_size=256, num_layers=4, num_heads=8, num_kv_heads=4,
                           intermediate_size=768, max_position_embeddings=512, rms_norm_eps=1e-5,
                           rope_theta=10000.0, tie_word_embeddings=True)


def train_tokenizer(docs: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(docs, trainer)
    return tok


def token_stream(tok, docs: list[str]) -> np.ndarray:
    """Each document followed by end-of-text, as one int64 array."""
    eot = tok.token_to_id(EOT)
    out = []
    for enc in tok.encode_batch(docs):
        out.extend(enc.ids)
        out.append(eot)
    return np.asarray(out, dtype=np.int64)


def perplexity(model, stream: np.ndarray, seq: int) -> float:
    """exp(mean next-token loss) over consecutive non-overlapping windows of the stream."""
    import torch
    import torch.nn.functional as F
    n = (len(stream) - 1) // seq
    x = torch.from_numpy(stream[: n * seq].reshape(n, seq))
    y = torch.from_numpy(stream[1: n * seq + 1].reshape(n, seq))
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, n, 32):
            logits = model(x[i:i + 32])
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[i:i + 32].reshape(-1),
                                     reduction="sum").item()
            count += y[i:i + 32].numel()
    return math.exp(total / count)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mixq.models.train_llm", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("weights") / "llm")
    ap.add_argument("--minutes", type=float, default=30.0, help="wall-clock budget (stops early)")
    ap.add_argument("--steps", type=int, default=4000, help="length of the LR schedule")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    train_docs, held_docs = fortune_documents("train"), fortune_documents("heldout")
    cfg = SMALL_CONFIG
    tok = train_tokenizer(train_docs, cfg.vocab_size)
    train, held = token_stream(tok, train_docs), token_stream(tok, held_docs)
    print(f"{len(train_docs)} train docs / {len(train)} tokens, {len(held_docs)} held-out docs / {len(held)} tokens",
          flush=True)

    model = LlamaForCausalLM(cfg).init_weights(seed=args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim == 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        by_time = (time.time() - t0) / (args.minutes * 60)
        t = min(1.0, max(by_time, (step - args.warmup) / max(1, args.steps - args.warmup)))
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    t0, step, ema = time.time(), 0, None
    model.train()
    while step < args.steps and time.time() - t0 < args.minutes * 60:
        starts = rng.integers(0, len(train) - args.seq - 1, size=args.batch)
        batch = torch.from_numpy(np.stack([train[s:s + args.seq + 1] for s in starts]))
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 25 == 0:
            print(f"step {step} loss {ema:.3f} lr {lr_at(step):.2e} {time.time() - t0:.0f}s", flush=True)
    train_s = time.time() - t0
    model.eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    ppl = perplexity(model, held, args.seq)
    print(f"held-out perplexity {ppl:.3f} after {step} steps ({train_s / 60:.1f} min)", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(args.out / f"{NAME}.safetensors"))
    tok.save(str(args.out / f"{NAME}.tokenizer.json"))
    meta = {"name": NAME, "config": cfg.to_dict(), "parameters": n_params, "dtype": "bfloat16",
            "heldout_perplexity": ppl, "heldout_tokens": int(len(held)), "train_tokens": int(len(train)),
            "train_docs": len(train_docs), "heldout_docs": len(held_docs), "eval_seq": args.seq,
            "steps": step, "tokens_seen": step * args.batch * args.seq, "train_minutes": round(train_s / 60, 1),
            "seed": args.seed, "threads": args.threads, "batch": args.batch, "seq": args.seq, "lr": args.lr,
            "schedule_steps": args.steps, "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
            "corpus": "Debian fortunes + fortunes-min, prose only (mixq.data.text_corpus), every 20th held out"}
    (args.out / f"{NAME}.json").write_text(json.dumps(meta, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
