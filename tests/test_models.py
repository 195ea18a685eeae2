"""mixq.models: zoo architectures, registry, shipped checkpoints, train/evaluate CLIs."""

import hashlib
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from mixq import data, models  # noqa: E402
from mixq.models.evaluate import accuracy  # noqa: E402

torch.set_num_threads(1)

# Ops a quantizing runtime has to support; MaxPool2d only in ResNet-50's stem.
ALLOWED = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear,
           nn.Dropout, nn.Identity, nn.Sequential)
TRAINED = ["resnet20", "mobilenet_v2_small"]
FULL = data.find_fashion_mnist("test") is not None


def test_registry_lists_models():
    assert models.available() == ["mobilenet_v2", "mobilenet_v2_small", "resnet20", "resnet50"]
    with pytest.raises(KeyError, match="unknown model 'vgg16'.*resnet20"):
        models.get("vgg16")


@pytest.mark.parametrize("name", ["resnet20", "mobilenet_v2_small", "mobilenet_v2", "resnet50"])
def test_builds_runs_and_uses_only_supported_ops(name):
    spec = models.info(name)
    model = models.get(name).eval()
    leaf_types = {type(m) for m in model.modules() if isinstance(m, ALLOWED + (nn.MaxPool2d,))}
    unexpected = {type(m).__name__ for m in model.modules()
                  if not isinstance(m, ALLOWED + (nn.MaxPool2d,)) and list(m.children()) == []}
    assert not unexpected, f"{name} uses unsupported leaf modules {unexpected}"
    if name != "resnet50":
        assert nn.MaxPool2d not in leaf_types
    x = torch.randn(1, *spec.input_shape)
    with torch.inference_mode():
        y = model(x)
    assert y.shape == (1, spec.num_classes) and torch.isfinite(y).all()


@pytest.mark.parametrize("name", ["resnet20", "mobilenet_v2_small", "resnet50"])
def test_fx_traceable(name):
    model = models.get(name).eval()
    gm = torch.fx.symbolic_trace(model)
    x = torch.randn(2, *models.info(name).input_shape) if name != "resnet50" else torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(gm(x), model(x))


def test_parameter_counts_match_the_papers():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(models.resnet20(in_channels=3)) == pytest.approx(0.27e6, rel=0.03)
    assert count(models.mobilenet_v2()) == 3_504_872
    assert count(models.resnet50()) == 25_557_032


def test_resnet20_shapes_and_options():
    m = models.resnet20(in_channels=3, num_classes=100).eval()
    with torch.inference_mode():
        assert m(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    widths = [b.conv2.out_channels for b in m.layers]
    assert widths == [16] * 3 + [32] * 3 + [64] * 3
    assert [b.conv1.stride[0] for b in m.layers] == [1, 1, 1, 2, 1, 1, 2, 1, 1]


def test_mobilenet_v2_variants_and_width():
    small = models.mobilenet_v2("small")
    assert small.features[0][0].stride == (1, 1) and small.features[0][0].in_channels == 1
    big = models.mobilenet_v2("imagenet")
    assert big.features[0][0].stride == (2, 2) and big.classifier.out_features == 1000
    half = models.mobilenet_v2("small", width_mult=0.5).eval()
    assert half.features[0][0].out_channels == 16
    with torch.inference_mode():
        for px in (28, 32):
            assert half(torch.randn(2, 1, px, px)).shape == (2, 10)
    with pytest.raises(ValueError, match="unknown MobileNetV2 variant"):
        models.mobilenet_v2("large")


def test_resnet50_is_v1_5():
    m = models.resnet50()
    first = m.layer2[0]
    assert first.conv1.stride == (1, 1) and first.conv2.stride == (2, 2)
    assert first.downsample[0].stride == (2, 2)


def test_pretrained_without_checkpoint_is_a_clear_error():
    with pytest.raises(models.CheckpointNotFoundError, match="no shipped checkpoint for 'resnet50'"):
        models.get("resnet50", pretrained=True)


@pytest.mark.parametrize("name", TRAINED)
def test_shipped_checkpoint_scores_on_subset(name):
    spec = models.info(name)
    if not spec.has_checkpoint:
        pytest.skip(f"no checkpoint for {name} shipped yet ({spec.checkpoint} missing)")
    meta = models.checkpoint_metadata(name)
    raw = spec.checkpoint.read_bytes()
    assert len(raw) <= 10_000_000
    assert hashlib.sha256(raw).hexdigest() == meta["weights_sha256"]
    assert meta["test_images"] == 10000 and meta["torch_version"] and meta["epochs"] >= 1

    model = models.get(name, pretrained=True)
    assert not model.training
    x, y = data.fashion_mnist("test-subset")
    acc = 100 * accuracy(model, x, y)
    assert abs(acc - meta["test_accuracy"]) <= 1.5, (acc, meta["test_accuracy"])
    assert acc == pytest.approx(meta["subset_accuracy"], abs=0.1)


@pytest.mark.parametrize("name", TRAINED)
def test_numpy_safetensors_reader_matches_library(name):
    spec = models.info(name)
    if not spec.has_checkpoint:
        pytest.skip(f"no checkpoint for {name} shipped yet")
    st = pytest.importorskip("safetensors.torch")
    ref = st.load_file(str(spec.checkpoint))
    ours = models.read_safetensors(spec.checkpoint)
    assert ours.keys() == ref.keys()
    for k, v in ref.items():
        np.testing.assert_array_equal(ours[k], v.numpy())


def test_train_and_evaluate_cli_smoke(tmp_path, capsys):
    if not FULL:
        pytest.skip("training needs the full Fashion-MNIST (apt-get install dataset-fashion-mnist)")
    pytest.importorskip("safetensors")
    pytest.importorskip("tqdm")
    from mixq.models import evaluate, train

    rc = train.main(["--model", "resnet20", "--epochs", "1", "--max-batches", "3", "--batch-size", "64",
                     "--out", str(tmp_path)])
    assert rc == 0
    meta = json.loads((tmp_path / "resnet20.json").read_text())
    assert meta["epochs"] == 1 and meta["seed"] == 0 and 0 <= meta["test_accuracy"] <= 100
    assert meta["lr_schedule"]["name"] == "OneCycleLR" and meta["training_seconds"] > 0
    rc = evaluate.main(["--model", "resnet20", "--checkpoint", str(tmp_path / "resnet20.safetensors"),
                        "--subset", "--tolerance", "100"])
    assert rc == 0
    assert "test-subset: 2000 images" in capsys.readouterr().out
