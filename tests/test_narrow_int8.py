"""w7a8: int8 weights on the narrow range [-64, 64], which CPUs without VNNI multiply exactly with
vpmaddubsw (kernel kind s7). The fast kernel takes only weights whose every code is narrow, results
are the same bit for bit on every ISA path, and `int8` names this CPU's default int8 precision."""
import numpy as np
import pytest

import mixq
from mixq import _core
from mixq.quant import parse_precision
from mixq.quant.precisions import default_int8

HAS_AVX2 = "avx2" in mixq.available_isas()
S7 = "u8s7s32_gemm_3x32c4__avx2"


def _int32_matmul(codes, x):
    packed = mixq.pack_weights(codes, bits=8, scale=np.ones(codes.shape[0], np.float32))
    out = mixq.matmul(x, packed, x_scale=1.0, x_zero_point=0, out_dtype="int32")
    return out, mixq.last_kernel()


def _exact(codes, x):
    return (x.astype(np.int64) @ codes.T.astype(np.int64)).astype(np.int32)


def test_w7a8_codes_are_narrow_and_symmetric():
    w = np.random.default_rng(0).standard_normal((48, 200)).astype(np.float32) * 3
    codes, scale, zero_point, _ = parse_precision("w7a8").quantize(w)
    assert zero_point is None and codes.min() == -64 and codes.max() == 64
    np.testing.assert_allclose(scale, np.abs(w).max(axis=1) / 64, rtol=1e-6)


@pytest.mark.parametrize("shape", [(1, 96, 64), (5, 33, 70), (40, 64, 576), (200, 130, 1000)])
def test_extreme_operands_exact_on_every_isa(isa, shape):
    """All-255 activations against all -64 / all 64 / alternating codes: every vpmaddubsw pair at
    its largest magnitude (2 * 255 * 64 = 32640), exact int32 on every path."""
    m, n, k = shape
    x = np.full((m, k), 255, np.uint8)
    for codes in (np.full((n, k), -64, np.int8), np.full((n, k), 64, np.int8),
                  np.where(np.arange(n * k).reshape(n, k) % 3 == 0, -64, 64).astype(np.int8)):
        out, _ = _int32_matmul(codes, x)
        np.testing.assert_array_equal(out, _exact(codes, x))


@pytest.mark.skipif(not HAS_AVX2, reason="the s7 kernel is an AVX2 kernel")
@pytest.mark.parametrize("m", [1, 3, 64, 300])
def test_full_range_codes_never_reach_vpmaddubsw(m):
    """Under the AVX2 path narrow codes run on s7; a single code of -65 or 65 (a pair that could
    saturate int16) sends the whole weight to the exact full-range kernels instead."""
    rng = np.random.default_rng(m)
    x = np.full((m, 256), 255, np.uint8)
    narrow = rng.integers(-64, 65, (64, 256)).astype(np.int8)
    before = mixq.cpu_info()["isa"]
    try:
        mixq.set_isa("avx2")
        out, kernel = _int32_matmul(narrow, x)
        assert kernel == S7
        np.testing.assert_array_equal(out, _exact(narrow, x))
        for bad in (-65, 65, -128, 127):
            wide = narrow.copy()
            wide[17, 101] = bad
            wide[3, :] = np.sign(bad) * 127  # a row whose pairs would saturate vpmaddubsw
            out, kernel = _int32_matmul(wide, x)
            assert kernel != S7, bad
            np.testing.assert_array_equal(out, _exact(wide, x))
    finally:
        mixq.set_isa(before)


def test_vnni_and_reference_keep_their_own_kernels():
    """s7 replaces only an s8 kernel of its own level: VNNI's vpdpbusd is faster and exact anyway."""
    narrow = np.random.default_rng(1).integers(-64, 65, (64, 128)).astype(np.int8)
    x = np.random.default_rng(2).integers(0, 256, (8, 128), dtype=np.uint8)
    before = mixq.cpu_info()["isa"]
    try:
        for isa in mixq.available_isas():
            mixq.set_isa(isa)
            out, kernel = _int32_matmul(narrow, x)
            assert (kernel == S7) == (isa == "avx2"), (isa, kernel)
            assert default_int8() == ("w7a8" if isa == "avx2" else "w8a8")
            np.testing.assert_array_equal(out, _exact(narrow, x))
    finally:
        mixq.set_isa(before)


def test_int8_alias_names_this_cpus_default():
    assert str(parse_precision("int8")) == default_int8()
    assert str(parse_precision(" INT8 ")) == default_int8()
    with pytest.raises(ValueError, match="int8"):
        parse_precision("int9")


torch = pytest.importorskip("torch")


def _model():
    nn = torch.nn
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2, padding=1),
                         nn.BatchNorm2d(64), nn.ReLU(), nn.Conv2d(64, 64, 1), nn.ReLU(), nn.Conv2d(64, 16, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()


def test_w7a8_plan_is_identical_on_every_isa_and_after_reload(tmp_path):
    """The plan records w7a8 per layer; on each path (s7 under AVX2) implicit-GEMM convs and im2col
    give the same bits, before and after a save / load (the loader re-derives narrowness). Across
    paths the int32 products agree exactly, but a requantized code may differ by one where the
    AVX-512 epilogue's folded scale rounds a near-tie the other way, so outputs agree closely."""
    from mixq.runtime.cnn.oracle import simulate

    calib = [torch.randn(4, 3, 15, 13, generator=torch.Generator().manual_seed(s)) for s in range(2)]
    plan = mixq.compile(_model(), calib[0], "w7a8", calibration=calib, progress=False)
    assert {layer["precision"] for layer in plan.layers()} == {"w7a8"}
    x = np.random.default_rng(3).standard_normal((3, 3, 15, 13)).astype(np.float32)
    plan.save(tmp_path / "w7a8.mixq")
    loaded = mixq.load_plan(tmp_path / "w7a8.mixq")
    assert {layer["precision"] for layer in loaded.layers()} == {"w7a8"}
    before = mixq.cpu_info()["isa"]
    first = None
    try:
        for isa in mixq.available_isas():
            mixq.set_isa(isa)
            y = plan.run(x)
            np.testing.assert_array_equal(loaded.run(x), y, err_msg=isa)
            _core.set_implicit_conv(False)
            np.testing.assert_array_equal(plan.run(x), y, err_msg=isa)
            _core.set_implicit_conv(True)
            first = y if first is None else first
            np.testing.assert_allclose(y, first, rtol=0, atol=0.01 * np.abs(first).max(), err_msg=isa)
    finally:
        _core.set_implicit_conv(True)
        mixq.set_isa(before)
    oracle = simulate(plan.lowered, x)
    assert np.abs(first - oracle).max() <= 0.05 * np.abs(oracle).max()


def test_compile_int8_records_the_resolved_precision():
    x = torch.randn(2, 3, 15, 13)
    plan = mixq.compile(_model(), x, "int8", calibration=[x], progress=False)
    assert {layer["precision"] for layer in plan.layers()} == {default_int8()}


def test_machine_model_roof_of_w7a8():
    """The planner's roof for w7a8 is the narrow-code loop's peak where w7a8 runs on it; a machine
    model from before that field existed falls back to the int8 peak."""
    from mixq.planner.roofline.machine import Machine

    base = dict(cpu="x", isa="avx2", threads=2, peak_int8_gops=300.0, peak_bf16_gflops=100.0, peak_fp32_gflops=200.0,
                gemm_int8_gops=250.0, gemm_fp32_gflops=180.0, dram_read_gbs=30.0, l3_read_gbs=200.0, l2_read_gbs=400.0)
    old = Machine.from_dict(base)
    assert old.compute_roof("w7a8") == old.compute_roof("w8a8") == 300e9
    new = Machine.from_dict({**base, "peak_int8_narrow_gops": 570.0})
    assert new.compute_roof("w7a8") == 570e9 and new.compute_roof("w8a8") == 300e9
    assert mixq.measure_peak("int8_narrow" if HAS_AVX2 else "int8", 0.01) > 0
