"""LLM.int8()-style outlier channels in decoder plans (compile_decoder(..., calibration,
outlier_threshold)): the planted channels are found, the plan follows its oracle, its fp32 part is
the fp32 model's, it beats plain W8A8 on outlier activations, decode agrees with prefill, plan
files round-trip and hostile ones are refused, bad input is refused, and without calibration
nothing changes."""
import hashlib
import json

import numpy as np
import pytest

import mixq

torch = pytest.importorskip("torch")

from mixq.models.llama import LlamaConfig, LlamaForCausalLM  # noqa: E402
from mixq.runtime.decoder import DecoderPlan  # noqa: E402
from mixq.runtime.decoder.compile import decoder_params  # noqa: E402
from mixq.runtime.decoder.lower import lower_decoder  # noqa: E402
from mixq.runtime.decoder.oracle import simulate_decoder  # noqa: E402
from mixq.runtime.decoder.outliers import select_outliers  # noqa: E402
from mixq.runtime.plan_file import read_plan, write_plan  # noqa: E402
from decoder_reference import rel, torch_logits  # noqa: E402

SMALL = LlamaConfig(vocab_size=384, hidden_size=128, num_layers=2, num_heads=4, num_kv_heads=2,
                    intermediate_size=256, max_position_embeddings=48)
PLANTED = [5, 40, 99]
FACTOR = 100.0
# int8 activations on the GEMMs that read the planted channels only: o, down and the head in fp32
QKV_GATE_UP = {"default": "fp32", "layers": {"*.self_attn.[qkv]_proj": "w8a8", "*.mlp.gate_proj": "w8a8",
                                             "*.mlp.up_proj": "w8a8"}}


def planted_model(factor=FACTOR, seed=0):
    """A random small Llama whose hidden channels PLANTED come out of both RMSNorms of every
    layer `factor` times larger, with the q/k/v/gate/up weight columns reading them divided by
    `factor`: the fp32 function is the unplanted model's (as in trained LLMs, large outlier
    features do not swamp the next layer), but a per-token int8 scale is set by those channels."""
    m = LlamaForCausalLM(SMALL).init_weights(std=0.05, seed=seed).eval()
    with torch.no_grad():
        for layer in m.model.layers:
            for norm in (layer.input_layernorm, layer.post_attention_layernorm):
                norm.weight[PLANTED] *= factor
            for lin in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj,
                        layer.mlp.gate_proj, layer.mlp.up_proj):
                lin.weight[:, PLANTED] /= factor
    return m


@pytest.fixture(scope="module")
def model():
    return planted_model()


@pytest.fixture(scope="module")
def calib():
    return np.random.default_rng(1).integers(0, SMALL.vocab_size, size=(4, 32))


@pytest.fixture(scope="module")
def ids():
    return np.random.default_rng(2).integers(0, SMALL.vocab_size, size=24)


def expected_outliers():
    return {f"model.layers.{i}.{g}": PLANTED for i in range(SMALL.num_layers) for g in ("self_attn.qkv", "mlp.gate_up")}


def test_outlier_channels_found_are_the_planted_ones(model, calib):
    plan = mixq.compile_decoder(model, "w8a8", calib, outlier_threshold=6.0)
    assert {k: v.tolist() for k, v in plan.outlier_channels().items()} == expected_outliers()
    assert plan.meta["outlier_channels"] == 4 * len(PLANTED) and plan.meta["outlier_threshold"] == 6.0
    # the fp32 columns cost their bytes; the int8 weights stay the same size
    plain = mixq.compile_decoder(model, "w8a8")
    assert plan.weight_bytes > plain.weight_bytes
    # a list of sequences of any length calibrates the same way
    same = mixq.compile_decoder(model, "w8a8", [calib[0], calib[1:, :20], list(calib[3])], outlier_threshold=6.0)
    assert {k: v.tolist() for k, v in same.outlier_channels().items()} == expected_outliers()


def test_outlier_count_is_capped_largest_first(model, calib):
    amax = np.array([1.0, 9.0, 7.0, 3.0, 8.0] + [0.5] * 35, dtype=np.float32)  # K = 40: cap 2
    assert select_outliers(amax, 2.0).tolist() == [1, 4]
    assert select_outliers(amax, 8.5).tolist() == [1]
    assert select_outliers(amax, 10.0).tolist() == []
    assert select_outliers(np.array([5.0, 7.0], np.float32), 1.0).tolist() == [1]  # at least one
    plan = mixq.compile_decoder(model, "w8a8", calib, outlier_threshold=1e-3)  # every channel is over
    found = plan.outlier_channels()
    assert found["model.layers.0.self_attn.qkv"].size == int(0.05 * SMALL.hidden_size)
    assert found["model.layers.1.mlp.down_proj"].size == int(0.05 * SMALL.intermediate_size)
    assert set(PLANTED) <= set(found["model.layers.0.mlp.gate_up"].tolist())  # the largest kept
    assert "lm_head" in found


@pytest.mark.parametrize("config", ["w8a8", "w4a8-g64", "w2a8-g32", QKV_GATE_UP,
                                    {"default": "w4a32-g64", "layers": {"lm_head": "w8a8"}}])
def test_plan_within_bound_of_oracle(model, calib, ids, config, isa):
    plan = mixq.compile_decoder(model, config, calib, outlier_threshold=6.0)
    if isinstance(config, dict) and config["default"] == "w4a32-g64":
        assert list(plan.outlier_channels()) in ([], ["lm_head"])  # weight-only linears take none
    params = decoder_params(model)[1]
    oracle = simulate_decoder(plan.spec, params, ids, plan.stored)
    assert rel(plan.logits(ids), oracle) <= 0.02
    if config == "w8a8":  # the oracle really splits: without the outliers it is another model
        assert rel(simulate_decoder(plan.spec, params, ids), oracle) > 0.1


def test_outlier_part_is_the_fp32_model(model, calib, ids, isa):
    """With every int8 weight zero but the outlier columns, the int8 GEMMs add exactly nothing and
    the plan is the fp32 plan of the same weights up to fp32 rounding."""
    cfg, params = decoder_params(model)
    found = mixq.compile_decoder(model, QKV_GATE_UP, calib, outlier_threshold=6.0).outlier_channels()
    params = dict(params)
    for gemm, cols in found.items():
        p, kind = gemm.rsplit(".", 1)
        for part in ({"qkv": ("q_proj", "k_proj", "v_proj"), "gate_up": ("gate_proj", "up_proj")}[kind]):
            w = np.zeros_like(params[f"{p}.{part}.weight"])
            w[:, cols] = params[f"{p}.{part}.weight"][:, cols]
            params[f"{p}.{part}.weight"] = w
    split = DecoderPlan(*lower_decoder(cfg, params, QKV_GATE_UP, outliers=found))
    fp32 = DecoderPlan(*lower_decoder(cfg, params, None))
    want = fp32.logits(ids)
    assert np.abs(want).max() > 0
    assert rel(split.logits(ids), want) <= 1e-5
    # and without the split the same weights in w8a8 are far off (the planted channels set the scale)
    plain = DecoderPlan(*lower_decoder(cfg, params, QKV_GATE_UP))
    assert rel(plain.logits(ids), want) > 1e-4


def test_outliers_beat_plain_w8a8_on_planted_outliers(model, calib, ids):
    ref = torch_logits(model, ids)
    plain = rel(mixq.compile_decoder(model, "w8a8").logits(ids), ref)
    split = rel(mixq.compile_decoder(model, "w8a8", calib, outlier_threshold=6.0).logits(ids), ref)
    assert split * 5 <= plain, (plain, split)


@pytest.mark.parametrize("config", ["w8a8", "w4a8-g64"])
def test_prefill_and_token_by_token_decode_agree(model, calib, ids, config, isa):
    plan = mixq.compile_decoder(model, config, calib, outlier_threshold=6.0)
    full = plan.logits(ids)
    plan._core.reset()
    rows = [plan._core.forward(ids[:9].astype(np.int64), True)]
    rows += [plan._core.forward(ids[t:t + 1].astype(np.int64), False) for t in range(9, len(ids))]
    np.testing.assert_allclose(np.concatenate(rows), full, rtol=0, atol=1e-5 * np.abs(full).max())
    new = plan.generate(ids[:8], 6)
    seq = list(ids[:8])
    for _ in range(6):  # greedy by full-prefix reruns of the same plan
        seq.append(int(np.argmax(plan.logits(np.array(seq))[-1])))
    assert seq[8:] == list(new)


def test_plan_file_roundtrip_bit_for_bit_and_without_torch(tmp_path, model, calib, ids):
    import subprocess
    import sys

    plan = mixq.compile_decoder(model, "w4a8-g64", calib, outlier_threshold=6.0)
    path = tmp_path / "dec.mixq"
    plan.save(path)
    loaded = mixq.load_plan(path)
    np.testing.assert_array_equal(loaded.logits(ids), plan.logits(ids))
    assert {k: v.tolist() for k, v in loaded.outlier_channels().items()} == expected_outliers()
    assert loaded.weight_bytes == plan.weight_bytes
    want = plan.logits(ids)
    code = ("import sys, numpy as np; sys.modules['torch'] = None; import mixq; "
            f"p = mixq.load_plan({str(path)!r}); np.save({str(tmp_path / 'out.npy')!r}, "
            f"p.logits(np.array({list(map(int, ids))})))")
    subprocess.run([sys.executable, "-c", code], check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), want)


def test_bad_input_gives_clear_errors(model, calib):
    def compile_(config="w8a8", calibration=calib, threshold=6.0):
        return mixq.compile_decoder(model, config, calibration, outlier_threshold=threshold)

    with pytest.raises(ValueError, match="outside the vocabulary"):
        compile_(calibration=np.array([1, SMALL.vocab_size]))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        compile_(calibration=[np.array([3, 4]), np.array([-1])])
    with pytest.raises(ValueError, match="empty"):
        compile_(calibration=np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="empty"):
        compile_(calibration=[])
    with pytest.raises(TypeError, match="integers"):
        compile_(calibration=calib.astype(np.float32))
    with pytest.raises(ValueError, match="context"):
        compile_(calibration=np.zeros(SMALL.max_position_embeddings + 1, dtype=np.int64))
    with pytest.raises(ValueError, match=r"\[seq\] or \[batch, seq\]"):
        compile_(calibration=calib[None])
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="outlier_threshold"):
            compile_(threshold=bad)
    for bad in ("6", True):
        with pytest.raises(TypeError, match="outlier_threshold"):
            compile_(threshold=bad)
    with pytest.raises(ValueError, match="together"):
        mixq.compile_decoder(model, "w8a8", calib)
    with pytest.raises(ValueError, match="together"):
        mixq.compile_decoder(model, "w8a8", outlier_threshold=6.0)
    for config in (None, "fp32", "w4a32-g64", {"default": "bf16"}):
        with pytest.raises(ValueError, match="int8-activation"):
            compile_(config=config)
    cfg, params = decoder_params(model)
    with pytest.raises(ValueError, match="int8 activations"):
        lower_decoder(cfg, params, QKV_GATE_UP, outliers={"model.layers.0.mlp.down_proj": np.array([1])})
    with pytest.raises(ValueError, match="does not have"):
        lower_decoder(cfg, params, "w8a8", outliers={"model.layers.7.mlp.down_proj": np.array([1])})


def test_core_refuses_bad_outlier_channels():
    from mixq import _core
    from mixq.quant import parse_precision

    w = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    lin = _core.EncoderLinear(parse_precision("w8a8").pack(w)._core, "dynamic_int8", None)
    for cols in ([3, 3], [4, 2], [-1], [16]):
        with pytest.raises(ValueError, match="strictly increasing"):
            lin.set_outliers(np.array(cols, np.int32), np.zeros((8, len(cols)), np.float32))
    with pytest.raises(ValueError, match="outlier weights"):
        lin.set_outliers(np.array([1, 2], np.int32), np.zeros((8, 3), np.float32))
    lin.set_outliers(np.array([1, 2], np.int32), np.zeros((8, 2), np.float32))
    assert lin.outliers == [1, 2]
    with pytest.raises(ValueError, match="already set"):
        lin.set_outliers(np.array([3], np.int32), np.zeros((8, 1), np.float32))
    fp = _core.EncoderLinear(parse_precision("fp32").pack(w)._core, "float", None)
    with pytest.raises(ValueError, match="dynamic_int8"):
        fp.set_outliers(np.array([1], np.int32), np.zeros((8, 1), np.float32))


@pytest.mark.parametrize("edit, match", [
    (lambda s: s.__setitem__("model.layers.0.self_attn.qkv.outliers", np.array([5, 40, 128], np.int32)), "increasing"),
    (lambda s: s.__setitem__("model.layers.0.self_attn.qkv.outliers", np.array([5, 40, -1], np.int32)), "increasing"),
    (lambda s: s.__setitem__("model.layers.0.self_attn.qkv.outliers", np.array([5, 5, 99], np.int32)), "increasing"),
    (lambda s: s.__setitem__("model.layers.0.self_attn.qkv.outliers", np.array([40, 5, 99], np.int32)), "increasing"),
    (lambda s: s.__setitem__("model.layers.0.self_attn.qkv.outliers", np.array([5, 40, 99], np.uint8)), "int32"),
    (lambda s: s.__setitem__("model.layers.0.self_attn.qkv.outliers", np.zeros(0, np.int32)), "1 to 128"),
    (lambda s: s.__setitem__("model.layers.0.mlp.gate_up.outliers", np.array([5, 40], np.int32)), "shape"),
    (lambda s: s.pop("model.layers.1.mlp.gate_up.outlier_weight"), "both"),
    (lambda s: s.__setitem__("model.layers.1.mlp.down_proj.outliers", np.array([3], np.int32)), "both"),
    (lambda s: s["model.layers.0.self_attn.qkv.outlier_weight"].__setitem__((0, 0), np.nan), "NaN"),
])
def test_hostile_plan_files_are_refused(tmp_path, model, calib, edit, match):
    plan = mixq.compile_decoder(model, "w8a8", calib, outlier_threshold=6.0)
    plan.save(tmp_path / "ok.mixq")
    spec, stored, meta = read_plan(tmp_path / "ok.mixq")
    stored = {k: v.copy() for k, v in stored.items()}
    edit(stored)
    write_plan(tmp_path / "bad.mixq", spec, stored, meta)
    with pytest.raises(mixq.PlanFileError, match=match):
        mixq.load_plan(tmp_path / "bad.mixq")


def test_outliers_on_a_float_linear_in_a_file_are_refused(tmp_path, model, calib):
    plan = mixq.compile_decoder(model, QKV_GATE_UP, calib, outlier_threshold=6.0)
    plan.save(tmp_path / "ok.mixq")
    spec, stored, meta = read_plan(tmp_path / "ok.mixq")
    stored["model.layers.0.mlp.down_proj.outliers"] = np.array([3], np.int32)
    stored["model.layers.0.mlp.down_proj.outlier_weight"] = np.zeros((SMALL.hidden_size, 1), np.float32)
    write_plan(tmp_path / "bad.mixq", spec, stored, meta)
    with pytest.raises(mixq.PlanFileError, match="int8-activation"):
        mixq.load_plan(tmp_path / "bad.mixq")


def numpy_model():
    """Weights from numpy's generator (not torch's): the digests below hold on any torch."""
    m = LlamaForCausalLM(SMALL).eval()
    rng = np.random.default_rng(5)
    with torch.no_grad():
        for n, p in m.named_parameters():
            v = rng.standard_normal(p.shape) * 0.05 + (1.0 if "norm" in n else 0.0)
            p.copy_(torch.from_numpy(v.astype(np.float32)))
    return m


def plan_digest(plan) -> str:
    h = hashlib.sha256(json.dumps(plan.spec, sort_keys=True).encode())
    for k in sorted(plan.stored):
        h.update(k.encode())
        h.update(np.ascontiguousarray(plan.stored[k]).tobytes())
    return h.hexdigest()[:16]


# The plans of numpy_model() as compile_decoder made them before outlier channels existed (main
# at 0cff60d): without calibration the plan must not change by a byte.
BEFORE = {"w8a8": "15d067e659558be5", "w4a8-g64": "2aff9bd69d50558b"}


@pytest.mark.parametrize("config", sorted(BEFORE))
def test_without_calibration_plans_are_unchanged(tmp_path, config, ids):
    m = numpy_model()
    plan = mixq.compile_decoder(m, config)
    assert plan_digest(plan) == BEFORE[config]
    assert not plan.outlier_channels() and set(plan.meta) == {"config", "kv_cache", "compile_seconds"}
    # calibrated, but no channel over the threshold: the same plan, the same logits bit for bit
    none = mixq.compile_decoder(m, config, ids, outlier_threshold=1e6)
    assert plan_digest(none) == BEFORE[config] and none.meta["outlier_channels"] == 0
    np.testing.assert_array_equal(none.logits(ids), plan.logits(ids))
    plan.save(tmp_path / "a.mixq")
    none.meta = plan.meta
    none.save(tmp_path / "b.mixq")
    assert (tmp_path / "a.mixq").read_bytes() == (tmp_path / "b.mixq").read_bytes()
