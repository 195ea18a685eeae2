"""Fast checks of the transformer-encoder benchmark (bench/bert.py).

The full benchmark is a script, not a test. Here: the accuracy and ops formulas,
torch-dynint8's weight bytes, a failing compile skipping its row, and one in-process --quick run
of main() on a tiny BERT (standing in for the real models) with the real mixq encoder, which
exercises every row, the ratio columns, the sentence agreement table, the targets and the JSON. ORT rows are checked only where
onnxruntime is installed (CI installs .[test], without it).
"""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mixq.models import BertConfig, BertModel  # noqa: E402

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
import bert  # noqa: E402

HAVE_ORT = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None
HAVE_OV = HAVE_ORT and importlib.util.find_spec("openvino") is not None and importlib.util.find_spec("nncf") is not None
# vocabulary of MiniLM's tokenizer, so the benchmark's real-text inputs fit the tiny model too
TINY = BertConfig(vocab_size=30522, hidden_size=32, num_layers=2, num_heads=4,
                  intermediate_size=64, max_position_embeddings=128)


def tiny_model():
    return BertModel(TINY).init_weights(seed=0).eval()


def test_quality_hand_computed():
    ref = np.zeros((1, 3, 2))
    ref[0, 0], ref[0, 1], ref[0, 2] = [3, 4], [1, 0], [100, 100]
    out = ref.copy()
    out[0, 1] = [1, 0.5]      # token 1: ||(0, .5)|| / 1 = 0.5
    out[0, 2] = [0, 0]        # padded token: ignored
    err, cos = bert.quality(out, ref, np.array([[1, 1, 0]]))
    assert err == pytest.approx(0.5)
    a, b = np.array([4, 4.5]) / 2, np.array([4, 4]) / 2  # mean pools over the real tokens
    assert cos == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_model_ops():
    # per layer and token: 4 H^2 + 2 H F = 4096 + 4096; attention: 2 S^2 H per sequence
    assert bert.model_ops(TINY, batch=2, seq=16) == 2 * 2 * (2 * 16 * 8192 + 2 * 2 * 16 * 16 * 32)


def test_torch_dynint8_weight_bytes():
    model = tiny_model()
    _, total = bert.torch_dynint8(model)
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    expect = sum(m.weight.numel() + 8 + 4 * m.bias.numel() for m in linear)
    expect += 4 * sum(p.numel() for n, p in model.named_parameters()
                      if not any(n.startswith(f"{path}.") for path, m in model.named_modules()
                                 if isinstance(m, torch.nn.Linear)))
    assert total == expect


def test_compile_failure_skips_the_row(capsys):
    class Broken:
        @staticmethod
        def compile_encoder(model, config, calibration=None):
            raise RuntimeError("boom")

    enc = bert.MixqEncoders(Broken(), tiny_model())
    assert enc.runner("mixq-w8a8") is None and enc.runner("mixq-w8a8") is None  # tried once
    assert capsys.readouterr().out.count("compile_encoder failed: RuntimeError: boom") == 1


def test_quick_run_on_a_tiny_bert(tmp_path, monkeypatch, capsys):
    """main() end to end with the real mixq encoder on a tiny BERT standing in for the models."""
    monkeypatch.setattr(bert, "build_model", lambda name, quick: (tiny_model(), "tiny stand-in"))
    path = tmp_path / "bert.json"
    bert.main(["--quick", "--repeats", "1", "--models", "minilm", "--json", str(path)])
    out = capsys.readouterr().out
    data = json.loads(path.read_text())
    assert set(data) == {"machine", "results"} and data["machine"]["threads"] == 2
    got = {(r["case"], r["impl"]): r for r in data["results"]}
    impls = ["torch-fp32", "torch-dynint8", "mixq-fp32", "mixq-w8a8", "mixq-w4a8-g128"]
    if HAVE_ORT:
        impls += ["ort-fp32", "ort-int8"]
    if HAVE_OV:
        impls += ["ov-fp32", "ov-int8"]
    for bs in (1, 8):
        for impl in impls:
            assert (f"minilm seq128 bs{bs}", impl) in got
    assert all(r["bytes"] > 0 and r["ops"] == bert.model_ops(TINY, int(r["case"][-1]), 128)
               for r in data["results"])
    assert got[("minilm seq128 bs1", "mixq-w8a8")]["bytes"] < got[("minilm seq128 bs1", "mixq-fp32")]["bytes"]
    table = out.split("Transformer encoders")[1]
    assert "max rel err" in table and "x ort-int8" in table
    row = next(line for line in table.splitlines() if "bs1" in line and "mixq-fp32" in line)
    assert float(row.split()[9].rstrip("!")) < 1e-4  # fp32 plan vs torch (columns: case is 3 words)
    if HAVE_ORT:
        row = next(line for line in table.splitlines() if "bs8" in line and "ort-int8" in line)
        assert row.split()[6] == "-"  # its own x ort-int8 column
    if "sentence agreement skipped" not in out:
        agreement = out.split("MiniLM sentence embeddings vs torch-fp32")[1]
        row = next(line for line in agreement.splitlines() if line.startswith("mixq-fp32"))
        assert float(row.split()[1]) > 0.9999
    assert "Targets" in out and ("PASS" in out or "FAIL" in out)


def test_ort_missing_is_reported_not_fatal(tmp_path):
    feed = {"input_ids": np.zeros((1, 4), np.int64), "attention_mask": np.ones((1, 4), np.int64)}
    ort = bert.OrtEncoder(tiny_model(), feed, 2, str(tmp_path), {"onnxruntime": None, "onnx": None})
    assert ort.runners == {} and set(ort.skipped) == {"ort-fp32", "ort-int8"}
