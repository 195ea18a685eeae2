"""The CNN runtime: compile -> plan vs PyTorch (fp32) and vs the fake-quant oracle (quantized).

Documented bound (docs/runtime.md, mixq.runtime.cnn.oracle): the plan and the oracle compute the same
quantized network; they differ only by float rounding that can flip a uint8 code at a
rounding boundary. On the outputs we require max |plan - oracle| <= 5 % of max |oracle| and
top-1 agreement >= 99 %. FP32 plans match PyTorch within 1e-4 relative.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import mixq  # noqa: E402
from mixq.models import zoo  # noqa: E402
from mixq.runtime.cnn.oracle import simulate  # noqa: E402

QUANT_CONFIGS = ["w8a8", "w4a8-g32", "w2a8-g32", "w4a32", "bf16"]


def _calib(shape, n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g) for _ in range(n)]


def _randomize_bn(model, seed=0):
    """Non-trivial BatchNorm statistics, so folding is really exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def _check_fp32(model, x):
    plan = mixq.compile(model, x, "fp32", progress=False)
    with torch.no_grad():
        ref = model(x).numpy()
    y = plan.run(x.numpy())
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    return plan


def _check_quantized(model, x, config):
    plan = mixq.compile(model, x, config, calibration=_calib(tuple(x.shape)), progress=False)
    y = plan.run(x.numpy())
    oracle = simulate(plan.lowered, x.numpy())
    assert y.shape == oracle.shape
    scale = np.abs(oracle).max()
    assert np.abs(y - oracle).max() <= 0.05 * scale, (config, np.abs(y - oracle).max(), scale)
    if y.ndim == 2 and y.shape[0] > 1:
        assert (y.argmax(1) == oracle.argmax(1)).mean() >= 0.99
    return plan


# ------------------------------------------------------------------ zoo models
ZOO = {
    "resnet20": (lambda: zoo.resnet20(), (8, 1, 28, 28)),
    "mobilenet_v2_small": (lambda: zoo.mobilenet_v2("small"), (8, 1, 28, 28)),
    "resnet50": (lambda: zoo.resnet50(num_classes=100), (2, 3, 64, 64)),
}


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_model_fp32_matches_torch(name):
    build, shape = ZOO[name]
    torch.manual_seed(0)
    _check_fp32(_randomize_bn(build()), torch.randn(*shape))


@pytest.mark.parametrize("config", ["w8a8", "w4a8-g32"])
@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_model_quantized_matches_oracle(name, config):
    build, shape = ZOO[name]
    torch.manual_seed(0)
    _check_quantized(_randomize_bn(build()), torch.randn(*shape), config)


# ------------------------------------------------------------------ hand-made models
class ConcatNet(nn.Module):
    """concat of two branches, dilation, stride-2 depthwise, odd channels, pools, silu, hardswish."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 7, 3, padding=2, dilation=2)
        self.b = nn.Conv2d(3, 5, 1)
        self.bn = nn.BatchNorm2d(12)
        self.dw = nn.Conv2d(12, 12, 3, stride=2, padding=1, groups=12)
        self.grouped = nn.Conv2d(12, 6, 3, padding=1, groups=3)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.avg = nn.AvgPool2d(2)
        self.fc = nn.Linear(6 * 2 * 2, 11)

    def forward(self, x):
        y = torch.cat([torch.relu(self.a(x)), nn.functional.silu(self.b(x))], dim=1)
        y = nn.functional.relu6(self.bn(y))
        y = nn.functional.hardswish(self.dw(y))
        y = self.pool(torch.sigmoid(self.grouped(y)))
        y = self.avg(y)
        return self.fc(torch.flatten(y, 1))


class AddAfterAdd(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(4, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = self.c1(x) + x
        z = torch.relu(y + self.c2(y))  # both adds fuse into the convs' epilogues
        z = nn.functional.max_pool2d(z, 2, 1) + nn.functional.avg_pool2d(z, 2, 1)  # a standalone add
        return nn.functional.adaptive_avg_pool2d(z, 1).flatten(1)


class WidePool(nn.Module):
    """Max pooling of 70 channels: whole 64-byte chunks of the pool's running maximum and a tail
    (u8: one chunk of 64 and 6; fp32: four of 16 and 6), with padding taps."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 70, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.d = nn.Conv2d(70, 5, 1)

    def forward(self, x):
        return self.d(self.pool(torch.relu(self.c(x))))


HAND_MADE = {
    "concat": (ConcatNet, (6, 3, 15, 15)),
    "add_after_add": (AddAfterAdd, (3, 4, 9, 7)),
    "wide_pool": (WidePool, (2, 3, 9, 11)),
}


@pytest.mark.parametrize("name", list(HAND_MADE))
def test_hand_made_fp32(name):
    cls, shape = HAND_MADE[name]
    torch.manual_seed(1)
    _check_fp32(_randomize_bn(cls()), torch.randn(*shape))


@pytest.mark.parametrize("config", QUANT_CONFIGS)
@pytest.mark.parametrize("name", list(HAND_MADE))
def test_hand_made_quantized(name, config, isa):
    cls, shape = HAND_MADE[name]
    torch.manual_seed(1)
    _check_quantized(_randomize_bn(cls()), torch.randn(*shape), config)


def test_spatial_output_is_nchw():
    torch.manual_seed(2)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(2, 17, 3, stride=2, padding=1)
            self.dw = nn.Conv2d(17, 17, 5, padding=4, dilation=2, groups=17)

        def forward(self, x):
            return self.dw(nn.functional.hardtanh(self.c1(x), -0.5, 1.5))

    x = torch.randn(2, 2, 13, 11)
    plan = _check_fp32(Net().eval(), x)
    assert plan.run(x.numpy()).shape == (2, 17, 7, 6)
    _check_quantized(Net().eval(), x, "w8a8")


def test_mixed_precision_per_layer_config():
    torch.manual_seed(3)
    model = _randomize_bn(zoo.resnet20())
    x = torch.randn(4, 1, 28, 28)
    config = {"default": "w8a8", "layers": {"stem.0": "fp32", "layers.2.*": "w4a8-g32", "fc": "w4a32"}}
    plan = _check_quantized(model, x, config)
    by_name = {layer["name"]: layer["precision"] for layer in plan.layers()}
    assert by_name["stem.0"] == "fp32"
    assert by_name["layers.2.conv1"] == "w4a8-g32"
    assert by_name["fc"] == "w4a32-gchannel"  # K = 64 is shallower than the default group of 128
    assert by_name["layers.0.conv1"] == "w8a8"
    # The fp32 stem feeds int8 layers: it quantizes in its own epilogue, no separate pass.
    stem = next(op for op in plan.spec["ops"] if op["name"] == "stem.0")
    assert plan.spec["tensors"][stem["inputs"][0]]["dtype"] == "float32"
    assert plan.spec["tensors"][stem["output"]]["dtype"] == "uint8"
    assert not any(op["kind"] == "convert" for op in plan.spec["ops"])


def test_depthwise_low_bit_runs_at_int8():
    torch.manual_seed(4)
    model = _randomize_bn(zoo.mobilenet_v2("small"))
    plan = mixq.compile(model, torch.randn(2, 1, 28, 28), "w4a8-g32", calibration=_calib((2, 1, 28, 28)),
                        progress=False)
    dw = [op for op in plan.spec["ops"] if op["kind"] == "depthwise"]
    assert dw and all(op["precision"] == "w8a8" for op in dw)


def test_weight_bytes_shrink():
    torch.manual_seed(5)
    model = _randomize_bn(zoo.resnet20())
    x = torch.randn(1, 1, 28, 28)
    fp32 = mixq.compile(model, x, "fp32", progress=False).weight_bytes
    w8 = mixq.compile(model, x, "w8a8", calibration=[x], progress=False).weight_bytes
    w4 = mixq.compile(model, x, "w4a8-g128", calibration=[x], progress=False).weight_bytes
    n_params = sum(p.numel() for n, p in model.named_parameters() if "bn" not in n and "shortcut.1" not in n
                   and not n.startswith("stem.1"))
    assert fp32 >= 4 * n_params * 0.99
    assert w8 < 0.3 * fp32 and w4 < w8


# ------------------------------------------------------------------ running
def test_batch_size_free_and_layouts():
    torch.manual_seed(6)
    model = _randomize_bn(zoo.resnet20())
    plan = mixq.compile(model, torch.randn(2, 1, 28, 28), "w8a8", calibration=_calib((2, 1, 28, 28)),
                        progress=False)
    x = np.random.default_rng(0).standard_normal((5, 1, 28, 28)).astype(np.float32)
    y5 = plan.run(x)
    assert y5.shape == (5, 10)
    np.testing.assert_array_equal(plan.run(x[2:3]), y5[2:3])
    np.testing.assert_array_equal(plan.run(x.transpose(0, 2, 3, 1), layout="nhwc"), y5)
    np.testing.assert_array_equal(plan.run(x[0]), y5[:1])  # a single CHW sample


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_nchw_input_quantized_as_nhwc(isa, channels):
    # An NCHW input is quantized and interleaved in one pass (vector code for 1, 3 and 4 channels,
    # a scalar tail past the last 16 pixels of a row): the same codes as the NHWC path.
    torch.manual_seed(channels)
    model = torch.nn.Sequential(torch.nn.Conv2d(channels, 8, 3, padding=1), torch.nn.ReLU()).eval()
    x = np.random.default_rng(channels).standard_normal((3, channels, 5, 37)).astype(np.float32) * 3
    plan = mixq.compile(model, torch.from_numpy(x), "w8a8", calibration=[torch.from_numpy(x[:2])], progress=False)
    nhwc = plan.run(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), layout="nhwc")
    np.testing.assert_array_equal(plan.run(x), nhwc.transpose(0, 3, 1, 2))  # outputs follow the input layout


def test_bad_inputs_are_refused():
    torch.manual_seed(7)
    plan = mixq.compile(_randomize_bn(zoo.resnet20()), torch.randn(1, 1, 28, 28), "fp32", progress=False)
    x = np.zeros((2, 1, 28, 28), np.float32)
    with pytest.raises(ValueError, match="input must be"):
        plan.run(np.zeros((2, 3, 28, 28), np.float32))
    with pytest.raises(TypeError, match="float"):
        plan.run(x.astype(np.int32))
    with pytest.raises(ValueError, match="layout"):
        plan.run(x, layout="nchw8")


@pytest.mark.parametrize("config", ["fp32", "w8a8"])
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_nan_and_inf_inputs_are_refused(isa, config, layout):
    # the core checks every value (no numpy pass): first, middle and last, in any image of the batch
    torch.manual_seed(7)
    plan = mixq.compile(_randomize_bn(zoo.resnet20()), torch.randn(1, 1, 28, 28), config,
                        calibration=_calib((1, 1, 28, 28)) if config != "fp32" else None, progress=False)
    x = np.zeros((3, 28, 28, 1) if layout == "nhwc" else (3, 1, 28, 28), np.float32)
    good = plan.run(x, layout=layout)
    for bad_value in (np.nan, np.inf, -np.inf):
        for index in (0, x.size // 2 + 1, x.size - 1):
            bad = x.copy()
            bad.flat[index] = bad_value
            with pytest.raises(ValueError, match="NaN or Inf"):
                plan.run(bad, layout=layout)
    np.testing.assert_array_equal(plan.run(x, layout=layout), good)  # a refused run leaves the plan usable


def test_nan_in_any_plane_of_an_nchw_input_is_refused():
    # An NCHW input is checked row by row while it is transposed: every plane of a row counts.
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    plan = mixq.compile(model, torch.randn(1, 3, 6, 5), "w8a8", calibration=[torch.randn(4, 3, 6, 5)],
                        progress=False)
    x = np.zeros((2, 3, 6, 5), np.float32)
    for index in [(0, 0, 0, 0), (1, 1, 3, 2), (1, 2, 5, 4)]:
        bad = x.copy()
        bad[index] = np.nan
        with pytest.raises(ValueError, match="NaN or Inf"):
            plan.run(bad)


def test_profile_reports_every_op():
    torch.manual_seed(8)
    plan = mixq.compile(_randomize_bn(zoo.resnet20()), torch.randn(1, 1, 28, 28), "w8a8",
                        calibration=_calib((1, 1, 28, 28)), progress=False)
    prof = plan.profile(np.zeros((2, 1, 28, 28), np.float32), repeats=2)
    assert len(prof) == len(plan.spec["ops"])
    assert all(p["seconds"] > 0 for p in prof)
    assert {p["kind"] for p in prof} >= {"conv", "pool"}
    spec = {op["name"]: op for op in plan.spec["ops"]}
    for p in prof:  # convs that read their input in place (1x1 stride 1, linear) spend no time in im2col
        op = spec[p["name"]]
        in_place = op["kind"] != "conv" or op["flatten_input"] or (
            tuple(op["kernel"]) == (1, 1) and tuple(op["stride"]) == (1, 1) and tuple(op["padding"]) == (0, 0))
        assert p["im2col_s"] == 0 if in_place else 0 <= p["im2col_s"] < p["seconds"], p
    # a padded 3x3 conv gathers patch rows (im2col) or pads its tasks' input rows (implicit GEMM)
    assert any(p["im2col_s"] > 0 for p in prof if tuple(spec[p["name"]].get("padding", (0, 0))) != (0, 0))
    kinds = plan.profile_by_kind(np.zeros((2, 1, 28, 28), np.float32), repeats=2)
    assert {"gemm", "im2col", "pool", "convert", "total"} <= set(kinds) and min(kinds.values()) > 0
    assert kinds["total"] == pytest.approx(sum(v for k, v in kinds.items() if k != "total"))


def test_threads_do_not_change_results():
    torch.manual_seed(9)
    plan = mixq.compile(_randomize_bn(zoo.mobilenet_v2("small")), torch.randn(3, 1, 28, 28), "w8a8",
                        calibration=_calib((3, 1, 28, 28)), progress=False)
    x = np.random.default_rng(1).standard_normal((3, 1, 28, 28)).astype(np.float32)
    before = mixq.get_num_threads()
    try:
        mixq.set_num_threads(1)
        y1 = plan.run(x)
        mixq.set_num_threads(2)
        np.testing.assert_array_equal(plan.run(x), y1)
    finally:
        mixq.set_num_threads(before)


# ------------------------------------------------------------------ errors at compile time
def test_unsupported_ops_listed_with_module_path():
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.act = nn.GELU()
            self.norm = nn.LayerNorm([4, 6, 6])

        def forward(self, x):
            return self.norm(self.act(self.conv(x))) * 2

    with pytest.raises(mixq.runtime.UnsupportedModelError) as e:
        mixq.compile(Bad().eval(), torch.randn(1, 3, 8, 8), "fp32", progress=False)
    msg = str(e.value)
    assert "act: module GELU" in msg
    assert "norm: module LayerNorm" in msg
    assert "function mul" in msg


def test_tuple_returning_modules_are_named():
    """LSTM / GRU return tuples; each is named with its path, not only the getitem after it."""
    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.rnn = nn.LSTM(24, 8, batch_first=True)
            self.head = nn.Sequential(nn.GRU(8, 8, batch_first=True))
            self.fc = nn.Linear(8, 2)

        def forward(self, x):
            seq = self.conv(x).mean(1)  # [N, 6, 6] -> rows as a sequence
            seq = seq.reshape(x.shape[0], 1, 36)[..., :24]
            y, _ = self.rnn(seq)
            y, _ = self.head(y)
            return self.fc(y[:, -1])

    with pytest.raises(mixq.runtime.UnsupportedModelError) as e:
        mixq.compile(Recurrent().eval(), torch.randn(1, 1, 8, 8), "fp32", progress=False)
    msg = str(e.value)
    assert "rnn: module LSTM (returns a tuple)" in msg
    assert "head.0: module GRU (returns a tuple)" in msg


def test_config_errors():
    model = _randomize_bn(zoo.resnet20())
    x = torch.randn(1, 1, 28, 28)
    with pytest.raises(ValueError, match="unknown precision"):
        mixq.compile(model, x, "w3a7", progress=False)
    with pytest.raises(ValueError, match="names no layer"):
        mixq.compile(model, x, {"default": "fp32", "layers": {"stem.00": "w8a8"}}, progress=False)
    with pytest.raises(ValueError, match="calibration batch"):
        mixq.compile(model, x, "w8a8", calibration=[torch.randn(1, 3, 28, 28)], progress=False)
    with pytest.raises(ValueError, match="NaN"):
        mixq.compile(model, x, "w8a8", calibration=[torch.full((1, 1, 28, 28), float("nan"))], progress=False)


def test_fp32_depthwise_between_int8_layers():
    torch.manual_seed(10)
    model = _randomize_bn(zoo.mobilenet_v2("small"))
    x = torch.randn(2, 1, 28, 28)
    config = {"default": "w8a8", "layers": {"features.1.block.0": "fp32", "features.4.block.3": "w4a32-g32"}}
    plan = _check_quantized(model, x, config)
    dw = next(op for op in plan.spec["ops"] if op["name"] == "features.1.block.0")
    assert dw["kind"] == "depthwise" and plan.spec["tensors"][dw["output"]]["dtype"] == "float32"
