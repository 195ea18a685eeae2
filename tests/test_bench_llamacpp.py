"""bench/llm.py's llama.cpp peer (bench/harness/llamacpp_peer.py): the config -> GGUF metadata and
tensor mapping and the bytes-per-token arithmetic run everywhere; writing a GGUF needs the gguf
package, quantizing and running it llama-cpp-python (the bench-only `llm` extra, not in CI), and
those tests skip without them. Nothing here is timed."""
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")  # mixq.models.llama (LlamaConfig) is a torch module file

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
import llm  # noqa: E402
from harness import llamacpp_peer as lp  # noqa: E402

from mixq.models.llama import tiny_llama_1b  # noqa: E402


@pytest.fixture(scope="module")
def small():
    """A small config every K-quant can hold (rows of 256) and its bench weights."""
    cfg = tiny_llama_1b(num_layers=2, hidden_size=256, num_heads=4, num_kv_heads=2, intermediate_size=512,
                        vocab_size=512, max_position_embeddings=128)
    return cfg, llm.random_weights(cfg)


def test_hparams_follow_the_config(small):
    cfg, _ = small
    hp = lp.gguf_hparams(cfg)
    assert (hp["add_embedding_length"], hp["add_block_count"], hp["add_feed_forward_length"]) == (256, 2, 512)
    assert (hp["add_head_count"], hp["add_head_count_kv"], hp["add_rope_dimension_count"]) == (4, 2, 64)
    assert (hp["add_context_length"], hp["add_vocab_size"]) == (128, 512)
    assert hp["add_rope_freq_base"] == cfg.rope_theta and hp["add_layer_norm_rms_eps"] == cfg.rms_norm_eps
    tiny = tiny_llama_1b()
    assert lp.gguf_hparams(tiny)["add_vocab_size"] == 32000  # the mixq rows' TinyLlama vocab


def test_placeholder_vocab():
    tokens, types = lp.placeholder_vocab(32000)
    assert len(tokens) == len(types) == 32000 and len(set(tokens)) == 32000
    assert tokens[:3] == ["<unk>", "<s>", "</s>"] and tokens[3 + 0x0A] == "<0x0A>" and types[3 + 0x0A] == "BYTE"
    assert set(types) == {"UNKNOWN", "CONTROL", "BYTE", "NORMAL"}
    with pytest.raises(ValueError, match="at least 259"):
        lp.placeholder_vocab(100)


def test_rope_rows_pair_adjacent_lanes():
    heads, d, k = 2, 8, 3
    w = np.arange(heads * d * k, dtype=np.float32).reshape(heads * d, k)
    out = lp.rope_rows_to_ggml(w, heads)
    for h in range(heads):
        for i in range(d // 2):  # HF pairs row i with i + d/2; llama.cpp wants them at 2i, 2i + 1
            assert np.array_equal(out[h * d + 2 * i], w[h * d + i])
            assert np.array_equal(out[h * d + 2 * i + 1], w[h * d + i + d // 2])


def test_tensors_split_the_fused_weights(small):
    cfg, w = small
    t = dict(lp.gguf_tensors(cfg, w))
    assert len(t) == 3 + 9 * cfg.num_layers
    h, kv, ff, v = cfg.hidden_size, cfg.kv_dim, cfg.intermediate_size, cfg.vocab_size
    shapes = {"token_embd.weight": (v, h), "output.weight": (v, h), "output_norm.weight": (h,),
              "blk.1.attn_q.weight": (h, h), "blk.1.attn_k.weight": (kv, h), "blk.1.attn_v.weight": (kv, h),
              "blk.1.attn_output.weight": (h, h), "blk.1.ffn_gate.weight": (ff, h),
              "blk.1.ffn_up.weight": (ff, h), "blk.1.ffn_down.weight": (h, ff), "blk.1.attn_norm.weight": (h,)}
    for name, shape in shapes.items():
        assert t[name].shape == shape, name
        assert t[name].dtype == (np.float32 if len(shape) == 1 else np.float16), name
    f16 = lambda a: a.astype(np.float16)  # noqa: E731
    assert np.array_equal(t["blk.0.attn_v.weight"], f16(w["self_attn.qkv"][h + kv:]))
    assert np.array_equal(t["blk.0.attn_k.weight"], f16(lp.rope_rows_to_ggml(w["self_attn.qkv"][h:h + kv], 2)))
    assert np.array_equal(np.concatenate([t["blk.1.ffn_gate.weight"], t["blk.1.ffn_up.weight"]]),
                          f16(w["mlp.gate_up"]))
    assert np.array_equal(t["output.weight"], f16(w["lm_head"]))


def test_decode_bytes_per_token(small):
    cfg, _ = small
    sizes = {"token_embd.weight": 10_000, "output.weight": 300, "blk.0.attn_q.weight": 200}
    kv_per_position = cfg.num_layers * 2 * cfg.kv_dim * 2  # K and V, f16, every layer
    assert lp.decode_bytes_per_token(sizes, cfg, 10.5) == 500 + kv_per_position * 10.5


def test_impl_names_follow_the_contract():
    assert [lp.impl_name(f) for f in lp.FORMATS] == ["llamacpp-q8_0", "llamacpp-q4_0", "llamacpp-q4_k_m",
                                                     "llamacpp-q2_k"]
    assert all(t[1] in {lp.impl_name(f) for f in lp.FORMATS} for t in llm.TARGETS)


def test_written_gguf_reads_back(small, tmp_path):
    gguf = pytest.importorskip("gguf")
    cfg, w = small
    path = str(tmp_path / "m.gguf")
    lp.write_f16_gguf(path, cfg, w)
    reader = gguf.GGUFReader(path)
    field = lambda key: reader.get_field(key).contents()  # noqa: E731
    assert field("general.architecture") == "llama"
    assert (field("llama.block_count"), field("llama.attention.head_count_kv")) == (2, 2)
    assert len(field("tokenizer.ggml.tokens")) == cfg.vocab_size
    tensors = {t.name: t for t in reader.tensors}
    assert len(tensors) == 3 + 9 * cfg.num_layers
    assert list(tensors["blk.0.ffn_down.weight"].shape) == [cfg.intermediate_size, cfg.hidden_size]  # GGUF order
    sizes = lp.gguf_tensor_bytes(path)
    assert sizes["blk.0.ffn_down.weight"] == cfg.intermediate_size * cfg.hidden_size * 2


def test_llamacpp_runs_the_same_model_as_mixq(small, tmp_path):
    """The f16 GGUF's logits match the mixq fp32 plan of the same weights (the Q/K row order for
    llama.cpp's rotary pairs included); a quantized file runs through the bench's runner."""
    pytest.importorskip("gguf")
    llama_cpp = pytest.importorskip("llama_cpp")
    cfg, w = small
    w = {k: v * 5 for k, v in w.items()}  # logits well above float16 rounding of the weights
    paths = lp.gguf_files(cfg, w, ["q8_0"], str(tmp_path), threads=2, seed=0)
    prompt = [int(t) for t in np.random.default_rng(1).integers(0, cfg.vocab_size, 16)]
    plan, _ = llm.mixq_plan(cfg, w, "fp32")
    want = plan.logits(np.array(prompt))
    f16 = next(tmp_path.glob("*-f16.gguf"))
    model = llama_cpp.Llama(model_path=str(f16), n_ctx=64, n_batch=16, logits_all=True, verbose=False)
    model.eval(prompt)
    got = model.scores[:len(prompt)]
    assert np.abs(got - want).max() <= 1e-2 * np.abs(want).max()
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.9
    runner = lp.LlamaCppRunner(paths["q8_0"], threads=2, prompt_len=len(prompt), new=4)
    prefill_s, step_s = runner(prompt, 4)
    assert prefill_s > 0 and step_s > 0 and runner.llm.n_tokens == len(prompt) + 3
