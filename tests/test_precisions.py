"""The precision table: every entry end to end (config -> pack -> plan run -> oracle), and the
config and the packer accepting exactly the same precisions."""
import numpy as np
import pytest

import mixq
from mixq.quant import PRECISIONS, QuantConfig, parse_precision
from mixq.quant.weights import GROUP_SIZES

torch = pytest.importorskip("torch")
nn = torch.nn


def _names():
    """Every precision of the table, each grouped one at every group size and per channel."""
    out = []
    for name, entry in PRECISIONS.items():
        if entry.grouped:
            out += [f"{name}-g{g}" for g in GROUP_SIZES] + [f"{name}-gchannel"]
        else:
            out.append(name)
    return out


def _tiny_cnn():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2, padding=1),
                          nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1, groups=64), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(64, 10))
    return model.eval()


@pytest.mark.parametrize("name", _names())
def test_entry_compiles_runs_and_matches_its_oracle(name):
    from mixq.runtime.cnn.oracle import simulate

    model = _tiny_cnn()
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    calib = [torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(s)) for s in range(2)]
    plan = mixq.compile(model, x, name, calibration=calib, progress=False)
    p = parse_precision(name)
    layers = {layer["name"]: layer["precision"] for layer in plan.layers()}
    assert layers["0"] == str(p.at_depth(27)) and layers["8"] == str(p.at_depth(64))
    assert layers["4"] == p.entry.depthwise  # depthwise has int8 and fp32 kernels only
    y = plan.run(x.numpy())
    oracle = simulate(plan.lowered, x.numpy())
    assert np.abs(y - oracle).max() <= 0.05 * np.abs(oracle).max(), name
    if p.entry.weight_bits == 32:
        with torch.no_grad():
            np.testing.assert_allclose(y, model(x).numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", _names())
def test_pack_matches_fake_quant_and_byte_count(name):
    """The packed weight runs the weight the oracle fake-quantizes, and the cost model's byte count
    is the packed codes + scales (+ bias) without padding."""
    p = parse_precision(name)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((40, 192)).astype(np.float32)
    packed = p.pack(w)
    eye = np.eye(192, dtype=np.float32)
    act = "fp32" if p.entry.core_mode == "weight_only" else "int8"
    got = mixq.matmul(eye, packed, act=act).T  # rows of the identity read the weight back
    expect = p.fake_quant(w)
    if p.entry.int8_activations:  # identity rows quantize exactly (0 and 1 on the uint8 grid)
        np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_allclose(got, expect, rtol=1e-6, atol=1e-7)
    assert p.weight_bytes(40, 192, bias=False) == int(np.ceil(40 * 192 * p.weight_bits / 8)) + {
        True: 3 * 40 * (-(-192 // (p.group_for(192) or 192))), False: 4 * 40 if p.entry.quantized_weights else 0
    }[p.low_bit]


@pytest.mark.parametrize("group", [16, 48, 96, 256, 0, -32, True])
def test_config_and_packer_refuse_the_same_groups(group):
    with pytest.raises(ValueError, match="group_size"):
        parse_precision({"precision": "w4a8", "group_size": group})
    with pytest.raises(ValueError, match="group_size"):
        mixq.pack_weights(np.ones((8, 256), np.float32), bits=4, group_size=group)


@pytest.mark.parametrize("group", [*GROUP_SIZES, None])
def test_config_and_packer_accept_the_same_groups(group):
    p = parse_precision({"precision": "w4a8", "group_size": group})
    assert p.group_size == group
    assert mixq.pack_weights(np.ones((8, 256), np.float32), bits=4, group_size=group).shape == (8, 256)
    assert parse_precision(str(p)) == p  # names round-trip


def test_names_and_errors():
    assert [str(parse_precision(n)) for n in ("W8A8", " fp32 ", "w4a8")] == ["w8a8", "fp32", "w4a8-g128"]
    for bad in ("w3a8", "w8a8-g32", "fp32-gchannel", "int8-g32", "w7a8-gchannel", "", None, 8):
        with pytest.raises(ValueError):
            parse_precision(bad)
    with pytest.raises(ValueError, match="has no group size"):
        parse_precision({"precision": "bf16", "group_size": 64})
    cfg = QuantConfig.from_any({"default": "fp32", "layers": {"conv*": "w2a8-g64"}})
    assert str(cfg.precision_of("conv1")) == "w2a8-g64" and str(cfg.precision_of("fc")) == "fp32"


def test_group_follows_the_layer_depth():
    p = parse_precision("w4a8-g128")
    assert p.group_for(576) == 64    # 9 x 64 input channels: halved until it divides
    assert p.group_for(1152) == 128
    assert p.group_for(100) is None  # deeper than the layer: one group per output channel
    assert p.group_for(200) == 128   # divides nothing down to 32: a partial last group
