"""The `mixq` command's transformer-encoder side: compile / profile / run for BERT-style plans
(all-MiniLM-L6-v2 with its real weights, BERT-Large with random ones)."""
from __future__ import annotations

import time

import numpy as np

ENCODER_MODELS = ("minilm", "bert-large")


def _tokenizer():
    from ..models import minilm_tokenizer

    return minilm_tokenizer()  # MiniLM's uncased vocabulary is BERT's (30522 tokens)


def _calibration(model, n_sentences: int) -> list[dict]:
    """Real sentences (Debian's fortunes) through MiniLM's tokenizer, in batches of 32; without
    them, seeded random token ids (BERT-Large's random weights do not care)."""
    try:
        from ..data import sentences

        texts, tok = sentences(n_sentences), _tokenizer()
        return [tok(texts[i:i + 32]) for i in range(0, len(texts), 32)]
    except Exception as e:  # noqa: BLE001 - any missing piece: fall back to random ids
        print(f"mixq: calibration on random token ids ({type(e).__name__}: {e})")
        rng = np.random.default_rng(1)
        vocab = model.config.vocab_size
        return [{"input_ids": rng.integers(1000, vocab, (8, 128)), "attention_mask": np.ones((8, 128), np.int64)}]


def compile_model(args):
    """(EncoderPlan, model) for --model minilm | bert-large at --config."""
    from ..models import bert_large, load_minilm
    from ..runtime.encoder import compile_encoder

    model = load_minilm()[0] if args.model == "minilm" else bert_large(seed=0)
    return compile_encoder(model, args.config, _calibration(model, args.calibration)), model


def profile(args) -> int:
    plan, _ = compile_model(args)
    rng = np.random.default_rng(2)
    ids = rng.integers(1000, plan.spec["vocab"], (args.batch, 128))
    rows = plan.profile(ids, repeats=args.repeats)
    total = sum(r["seconds"] for r in rows)
    print(f"{plan}\nbatch {args.batch} x 128 tokens: {1e3 * total:.2f} ms")
    for r in rows:
        print(f"{r['name']:<36}{r['seconds'] * 1e6:>10.1f} us  {100 * r['seconds'] / total:5.1f} %")
    return 0


def run(plan, args) -> int:
    """Sentence embeddings of --text (tokenized by MiniLM's tokenizer) or the last hidden state of
    --input token ids (.npy, int [batch, seq]; --mask optional)."""
    if args.text:
        enc = _tokenizer()(args.text)
        ids, mask = enc["input_ids"], enc["attention_mask"]
    elif args.input:
        ids = np.load(args.input)
        mask = np.load(args.mask) if args.mask else None
    else:
        raise SystemExit("mixq run: an encoder plan takes --text SENTENCE (repeatable) or --input ids.npy")
    t0 = time.perf_counter()
    hidden = plan.run(ids, mask)
    dt = time.perf_counter() - t0
    m = np.ones(hidden.shape[:2], np.float32) if mask is None else np.asarray(mask, np.float32)
    emb = (hidden * m[..., None]).sum(1) / np.maximum(m.sum(1, keepdims=True), 1.0)
    print(f"ran {plan} on {ids.shape} tokens in {1e3 * dt:.2f} ms -> hidden {hidden.shape}")
    if args.text and len(args.text) > 1:
        unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        print("cosine similarity of the sentence embeddings:")
        for i, row in enumerate(unit @ unit.T):
            print(f"  [{i}] " + " ".join(f"{v:6.3f}" for v in row) + f"  {args.text[i][:50]}")
    if args.output:
        np.save(args.output, emb if args.text else hidden)
        print(f"wrote {args.output} ({'sentence embeddings' if args.text else 'last hidden state'})")
    if args.profile:
        for p in plan.profile(ids, mask):
            print(f"{p['name']:<36}{p['seconds'] * 1e6:>10.1f} us")
    return 0
