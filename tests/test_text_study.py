"""Encoder cost model and the precision search on an encoder (small random BERT, token batches)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mixq  # noqa: E402
from mixq.planner.roofline import encoder_costs, model_totals, weight_bytes  # noqa: E402
from mixq.planner.text_study import encoder_layers, plan_agreement, reference_embeddings, search_encoder  # noqa: E402

from test_encoder import small_bert  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return small_bert(seed=3, num_layers=2)


@pytest.fixture(scope="module")
def batches():
    rng = np.random.default_rng(0)
    out, start = [], 0
    for n, s in ((24, 9), (24, 14)):
        ids = rng.integers(0, 97, (n, s))
        mask = np.ones((n, s), np.int64)
        mask[::3, s // 2:] = 0  # some padded sentences
        out.append((np.arange(start, start + n), ids, mask))
        start += n
    return out


def test_encoder_costs_equal_the_formulas(model):
    plan = mixq.compile_encoder(model, {"default": "fp32", "layers": {"encoder.layer.0.intermediate.dense": "w8a8",
                                                                      "encoder.layer.0.attention.matmul": "w8a8"}})
    costs = {c.name: c for c in encoder_costs(plan.spec, batch=2, seq=10)}
    m, h, i, heads = 20, 64, 80, 4
    ffn = costs["encoder.layer.0.intermediate.dense"]
    assert ffn.flops == 2 * m * i * h
    assert ffn.weight_bytes == i * h + 4 * i + 4 * i  # int8 codes, a scale and a bias per output channel
    assert ffn.act_bytes == m * h * 1 + m * i * 4     # u8 in, fp32 out
    q = costs["encoder.layer.1.attention.self.query"]
    assert q.weight_bytes == weight_bytes(h, h, "fp32") == 4 * h * h + 4 * h
    att = costs["encoder.layer.0.attention.matmul"]
    assert att.flops == 4 * 2 * heads * 10 * 10 * (h // heads)
    assert att.act_bytes == 3 * m * h + 2 * heads * 100 * (4 + 1) + m * h * 4
    assert len(costs) == 2 * 7
    totals = model_totals(list(costs.values()))
    assert totals["ai"] == pytest.approx(totals["flops"] / (totals["weight_bytes"] + totals["act_bytes"]))


def test_search_encoder_lowers_layers_within_the_floor(model, batches, tmp_path):
    ref = reference_embeddings(model, batches)
    cache = tmp_path / "evals.jsonl"
    result = search_encoder(model, batches, ref, candidates=("fp32", "w8a8", "w4a8-g32"), algorithm="greedy",
                            max_drop=1.0, cache_path=cache, progress=False)
    assert set(result.best) == set(encoder_layers(2))
    assert result.feasible and result.best_eval.accuracy >= 99.0 - 1e-9
    assert any(p != "fp32" for p in result.best.values())  # int8 costs < 1 point of cosine here
    assert all(result.best[n] in ("fp32", "w8a8") for n in result.best if n.endswith("attention.matmul"))
    plan = mixq.compile_encoder(model, {"default": "fp32", "layers": result.best})
    agreement = plan_agreement(plan, batches, ref)
    assert 100 * agreement["mean_cosine"] == pytest.approx(result.best_eval.accuracy)
    # Run again on the cache: every config comes from it, none is evaluated (or stored) again.
    stored = cache.read_text().count("\n")
    again = search_encoder(model, batches, ref, candidates=("fp32", "w8a8", "w4a8-g32"), algorithm="greedy",
                           max_drop=1.0, cache_path=cache, progress=False)
    assert again.best == result.best and cache.read_text().count("\n") == stored


def test_search_encoder_rejects_unknown_metric(model, batches):
    with pytest.raises(ValueError, match="metric"):
        search_encoder(model, batches, metric="bleu", progress=False)
