"""Fast checks of the end-to-end CNN benchmark (bench/e2e.py, bench/peers_cnn.py).

The full benchmark is a script, not a test. Here: the fp32 weight-byte count, the
guard around mixq's model API, and one in-process --quick run on ResNet-20 with a stand-in
mixq.compile (a plan that runs the torch model), which exercises the mixq rows, the ratio
columns and the targets footer. CI installs only .[test] (no onnxruntime): the ORT rows are
checked only where onnxruntime is installed.
"""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
import e2e  # noqa: E402
import peers_cnn  # noqa: E402
from harness import cli  # noqa: E402

HAVE_ORT = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None
HAVE_OV = HAVE_ORT and importlib.util.find_spec("openvino") is not None and importlib.util.find_spec("nncf") is not None


def test_unknown_model_is_rejected(capsys):
    with pytest.raises(SystemExit) as e:
        cli.parse_models(["--models", "resnet50,vgg"], "e2e.py", e2e.MODELS)
    assert e.value.code == 2 and "vgg" in capsys.readouterr().err
    assert cli.parse_models(["--quick", "--models", "resnet20"], "e2e.py", e2e.MODELS) == (["--quick"], ["resnet20"])


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, bias=False)   # folded with bn1: 108 + 4
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 5, 1, bias=False)   # no BN after it: 20, no bias
        self.conv3 = nn.Conv2d(5, 6, 1)               # own bias, BN after it: 30 + 6
        self.bn3 = nn.BatchNorm2d(6)
        self.bn_alone = nn.BatchNorm2d(6)             # after a ReLU: keeps 6 + 6
        self.fc = nn.Linear(6, 7)                     # 42 + 7

    def forward(self, x):
        x = self.conv2(self.bn1(self.conv1(x)))
        x = self.bn_alone(torch.relu(self.bn3(self.conv3(x))))
        return self.fc(x.mean((2, 3)))


def test_fp32_weight_bytes_folds_batchnorm():
    assert peers_cnn.fp32_weight_bytes(Tiny()) == 4 * (108 + 4 + 20 + 30 + 6 + 12 + 42 + 7)


def test_fp32_weight_bytes_of_zoo_models():
    from mixq.models import registry

    m = registry.get("resnet20")
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
    expect = sum(c.weight.numel() + c.out_channels for c in convs) + sum(p.numel() for p in m.fc.parameters())
    assert peers_cnn.fp32_weight_bytes(m) == 4 * expect


def test_model_ops_counts_macs():
    m = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    x = np.zeros((2, 2, 4, 4), np.float32)
    assert peers_cnn.model_ops(m, x) == 2 * (2 * 3 * 16 * 2 * 9 + 2 * 48 * 5)


class _NoCompile:
    pass


class _NotYet:
    @staticmethod
    def compile(*a, **k):
        raise NotImplementedError("w4a8 lowering")


def test_mixq_guard(capsys):
    x = np.zeros((1, 1, 28, 28), np.float32)
    plans = e2e.MixqPlans(_NoCompile(), nn.Identity(), [x])
    assert plans.runner("mixq-w8a8", x) is None
    assert plans.unavailable == "mixq.compile does not exist"
    assert plans.runner("mixq-fp32", x) is None  # not tried again
    plans = e2e.MixqPlans(_NotYet(), nn.Identity(), [x])
    assert plans.runner("mixq-w4a8-g128", x) is None and plans.unavailable is None
    out = capsys.readouterr().out
    assert out.count("mixq runtime not available") == 2 and "NotImplementedError" in out


def _fake_compile(calls):
    """mixq.compile stand-in with the API's contract: a torch model, a torch example input, a
    config name, a list of torch calibration batches -> plan with .run(numpy) and .weight_bytes."""
    def compile(model, example_input, config, calibration):
        assert isinstance(model, nn.Module) and not model.training
        assert isinstance(example_input, torch.Tensor) and example_input.dtype == torch.float32
        assert calibration and all(isinstance(b, torch.Tensor) for b in calibration)
        assert config in ("fp32", "w8a8", "w4a8-g128")
        calls.append((config, tuple(example_input.shape)))

        class Plan:
            weight_bytes = {"fp32": 4, "w8a8": 1, "w4a8-g128": 0.5}[config] * sum(
                p.numel() for p in model.parameters())

            @staticmethod
            def run(x):
                if x.shape[0] != example_input.shape[0]:
                    raise ValueError("plan compiled for another batch size")
                with torch.inference_mode():
                    return model(torch.from_numpy(x)).numpy()
        return Plan()
    return compile


def test_quick_run_with_stand_in_mixq(tmp_path, monkeypatch, capsys):
    import mixq

    calls = []
    monkeypatch.setattr(mixq, "compile", _fake_compile(calls), raising=False)
    path = tmp_path / "e2e.json"
    e2e.main(["--quick", "--repeats", "1", "--models", "resnet20", "--json", str(path)])
    out = capsys.readouterr().out
    data = json.loads(path.read_text())
    got = {(r["case"], r["impl"]) for r in data["results"]}
    impls = ["torch-fp32", "mixq-fp32", "mixq-w8a8", "mixq-w4a8-g128"]
    if HAVE_ORT:
        impls += ["ort-fp32", "ort-int8"]
    if HAVE_OV:
        impls += ["ov-fp32", "ov-int8"]
    for bs in (1, 64):
        for impl in impls:
            assert (f"resnet20 1x28x28 bs{bs}", impl) in got
    # compiled once per config for batch 1, again for batch 64 (the stand-in rejects it)
    assert sorted(calls) == sorted((c, (b, 1, 28, 28)) for c in ("fp32", "w8a8", "w4a8-g128")
                                   for b in (1, 64))
    assert all(r["bytes"] > 0 and r["ops"] > 0 for r in data["results"])
    assert "mixq-w8a8 weight bytes" in out and "x ort-int8" in out
    if HAVE_ORT:
        assert "every w8a8 vs ORT int8" in out and "n/a" not in out.split("Targets")[1].split("mixq-w8a8 weight")[0]


def test_ort_peers_missing_is_reported_not_fatal(monkeypatch, tmp_path):
    monkeypatch.setattr(peers_cnn, "peers", lambda verbose=False: {"onnxruntime": None, "onnx": None})
    x = np.zeros((1, 1, 28, 28), np.float32)
    ort = peers_cnn.OrtPeers(nn.Identity(), x, [x], 2, str(tmp_path))
    assert ort.runners == {} and set(ort.skipped) == {"ort-fp32", "ort-int8"}


def test_openvino_missing_is_reported_not_fatal(monkeypatch):
    from harness import openvino_peer

    monkeypatch.setattr(openvino_peer, "peers", lambda verbose=False: {"openvino": None})
    ov = openvino_peer.OvPeers("unused.onnx", [], 2, ["input"], print)
    assert ov.runners == {} and set(ov.skipped) == {"ov-fp32", "ov-int8"}
    ov = openvino_peer.OvPeers(None, [], 2, ["input"], print)  # no ONNX export (no onnx package)
    assert ov.runners == {} and set(ov.skipped) == {"ov-fp32", "ov-int8"}


def test_missing_peers_are_listed_under_the_table(capsys):
    from harness.model_bench import add_peer_runners, print_not_measured
    from harness.report import Results

    class Missing:
        runners, weight_bytes = {}, {}
        skipped = {"ov-fp32": "openvino not installed", "ov-int8": "openvino not installed"}

    runners, skipped = {}, {}
    add_peer_runners(runners, [Missing()], print, skipped)
    results = Results()
    results.add("case", "ort-fp32", 1.0, 1.0)
    print_not_measured(skipped, results)
    assert runners == {} and "not measured: ov-fp32, ov-int8 (openvino not installed)" in capsys.readouterr().out
