"""mixq.quant: reference primitives (checked against the native core bit for bit) and observers."""

import numpy as np
import pytest

import mixq
from mixq.quant import (
    MinMaxObserver,
    MSEObserver,
    PercentileObserver,
    choose_qparams,
    dequantize,
    fake_quant,
    fake_quant_weight,
    make_observer,
    qrange,
    quantize,
    quantize_weight,
)

# ---------------------------------------------------------------------------------------------
# qrange / quantize / dequantize


def test_qrange():
    assert qrange("uint8") == (0, 255)
    assert qrange("int8") == (-128, 127)
    assert qrange("uint4") == (0, 15)
    assert qrange("int4") == (-8, 7)
    assert qrange("uint2") == (0, 3)
    assert qrange(np.uint8) == (0, 255) and qrange(np.int8) == (-128, 127)
    for bad in ("uint16", "float32", None, 8):
        with pytest.raises(ValueError, match="dtype must be one of"):
            qrange(bad)


def test_rounding_is_half_to_even():
    x = np.array([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, 0.49999997, 2.5000002], np.float32)
    assert quantize(x, 1.0, 0, "int8").tolist() == [0, 2, 2, 4, 0, -2, -2, 0, 3]
    # the zero point is added after rounding: ties still go to even in the scaled domain
    assert quantize(x, 1.0, 10, "uint8").tolist() == [10, 12, 12, 14, 10, 8, 8, 10, 13]
    # scale 0.5: x / scale = 2x, ties at odd quarters
    assert quantize(np.array([0.25, 0.75, 1.25], np.float32), 0.5, 0, "int8").tolist() == [0, 2, 2]


def test_clamping_and_storage_types():
    x = np.array([-1e30, -np.inf, -300.0, -9.0, 0.0, 9.0, 300.0, np.inf, 1e30], np.float32)
    assert quantize(x, 1.0, 0, "uint8").tolist() == [0, 0, 0, 0, 0, 9, 255, 255, 255]
    assert quantize(x, 1.0, 0, "int8").tolist() == [-128, -128, -128, -9, 0, 9, 127, 127, 127]
    assert quantize(x, 1.0, 0, "int4").tolist() == [-8, -8, -8, -8, 0, 7, 7, 7, 7]
    assert quantize(x, 1.0, 2, "uint2").tolist() == [0, 0, 0, 0, 2, 3, 3, 3, 3]
    assert quantize(x, 1.0, 8, "uint4").dtype == np.uint8
    assert quantize(x, 1.0, 0, "int4").dtype == np.int8
    # tiny scale: x * (1/scale) overflows float32 to inf and saturates
    assert quantize(np.array([3e38, -3e38], np.float32), 1e-10, 0, "int8").tolist() == [127, -128]


def test_quantize_is_float32_multiply_by_inverse(rng):
    """The reference computes rint(x * float32(1/scale)) in float32, like the core; near ties that
    differs from rint(x / scale) in float64, and the reference must follow the core."""
    for s in (0.1, 0.3, 0.7, 0.01):
        s = np.float32(s)
        x = ((rng.integers(-120, 120, 4000) + 0.5) * s).astype(np.float32)  # near ties
        inv = np.float32(1) / s
        expect = np.clip(np.rint(x * inv) + np.float32(128), 0, 255).astype(np.uint8)
        q = quantize(x, s, 128)
        np.testing.assert_array_equal(q, expect)
        q64 = np.clip(np.rint(x.astype(np.float64) / np.float64(s)) + 128, 0, 255).astype(np.uint8)
        assert (q != q64).any()  # the data does discriminate the two definitions


def test_round_trip(rng):
    for dtype in ("uint8", "int8", "uint4", "int4", "uint2"):
        qmin, qmax = qrange(dtype)
        scale, zp = np.float32(0.0371), (qmin + qmax + 1) // 2
        codes = rng.integers(qmin, qmax + 1, 500)
        q = codes.astype(np.uint8 if qmin == 0 else np.int8)
        x = dequantize(q, scale, zp)
        assert x.dtype == np.float32
        np.testing.assert_array_equal(x, ((codes - zp).astype(np.float32) * scale))
        np.testing.assert_array_equal(quantize(x, scale, zp, dtype), q)  # grid points come back
        # inside the representable range the error is at most half a step
        lo, hi = scale * (qmin - zp), scale * (qmax - zp)
        y = rng.uniform(lo, hi, 1000).astype(np.float32)
        err = np.abs(fake_quant(y, scale, zp, dtype) - y)
        assert err.max() <= scale / 2 * (1 + 1e-5)


def test_per_channel_axis(rng):
    x = rng.standard_normal((5, 7, 3)).astype(np.float32)
    scale = rng.uniform(0.01, 0.1, 7).astype(np.float32)
    zp = rng.integers(0, 256, 7)
    q = quantize(x, scale, zp, "uint8", axis=1)
    for c in range(7):
        np.testing.assert_array_equal(q[:, c], quantize(x[:, c], scale[c], zp[c]))
    np.testing.assert_array_equal(quantize(x, scale, zp, axis=-2), q)
    back = dequantize(q, scale, zp, axis=1)
    for c in range(7):
        np.testing.assert_array_equal(back[:, c], dequantize(q[:, c], scale[c], zp[c]))
    np.testing.assert_array_equal(fake_quant(x, scale, zp, "uint8", axis=1), back)
    # axis=None: broadcasting parameters
    np.testing.assert_array_equal(quantize(x, scale[:, None], zp[:, None]), q)
    with pytest.raises(ValueError, match="shape"):
        quantize(x, scale, zp, axis=0)
    with pytest.raises(ValueError, match="broadcast"):
        quantize(x, scale, zp)
    with pytest.raises(ValueError, match="out of range"):
        quantize(x, scale, zp, axis=3)


def test_quantize_argument_errors():
    x = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="NaN"):
        quantize(np.array([1.0, np.nan], np.float32), 1.0, 0)
    for bad in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="scale"):
            quantize(x, bad, 0)
    with pytest.raises(ValueError, match="zero_point must lie"):
        quantize(x, 1.0, 256, "uint8")
    with pytest.raises(ValueError, match="zero_point must lie"):
        quantize(x, 1.0, 8, "int4")
    with pytest.raises(TypeError, match="zero_point"):
        quantize(x, 1.0, 1.5)
    with pytest.raises(TypeError, match="integer codes"):
        dequantize(x, 1.0, 0)


# ---------------------------------------------------------------------------------------------
# choose_qparams


def test_choose_qparams_properties(rng):
    lo = rng.uniform(-10, 10, 2000).astype(np.float32) * rng.choice([1e-3, 1.0, 1e3], 2000)
    hi = lo + np.abs(rng.standard_normal(2000)).astype(np.float32) * rng.choice([1e-3, 1.0, 1e3], 2000)
    lo, hi = lo.astype(np.float32), hi.astype(np.float32)
    for dtype, symmetric in (("uint8", False), ("int8", False), ("int8", True), ("uint4", False),
                             ("int4", True), ("uint2", False), ("uint8", True)):
        qmin, qmax = qrange(dtype)
        scale, zp = choose_qparams(lo, hi, dtype, symmetric)
        assert scale.dtype == np.float32 and zp.dtype == np.int32
        assert (scale > 0).all() and np.isfinite(scale).all()
        assert ((zp >= qmin) & (zp <= qmax)).all()
        # 0.0 is exactly representable: it quantizes to the zero point, which dequantizes to 0
        zero_q = quantize(np.zeros(len(lo), np.float32), scale, zp, dtype, axis=0)
        np.testing.assert_array_equal(zero_q.astype(np.int32), zp)
        assert (dequantize(zero_q, scale, zp, axis=0) == 0).all()
        # the representable range covers [min(lo, 0), max(hi, 0)] up to half a step
        lo0, hi0 = np.minimum(lo, 0), np.maximum(hi, 0)
        rep_lo = scale.astype(np.float64) * (qmin - zp)
        rep_hi = scale.astype(np.float64) * (qmax - zp)
        slack = scale * 0.5 + 1e-6 * np.maximum(np.abs(lo0), np.abs(hi0))
        assert (rep_lo <= lo0 + slack).all() and (rep_hi >= hi0 - slack).all()
        if symmetric and qmin < 0:
            assert (zp == 0).all()
            np.testing.assert_array_equal(scale, (np.maximum(-lo0, hi0) / np.float32(qmax)).astype(np.float32))


def test_choose_qparams_values():
    s, z = choose_qparams(-1.0, 2.0)
    assert isinstance(s, np.float32) and isinstance(z, int)
    assert s == np.float32(3.0) / np.float32(255) and z == 85
    assert choose_qparams(1.0, 2.0) == (np.float32(2.0) / np.float32(255), 0)  # extended to include 0
    assert choose_qparams(-2.0, -1.0) == (np.float32(2.0) / np.float32(255), 255)
    assert choose_qparams(-1.0, 2.0, "int8") == (np.float32(3.0) / np.float32(255), -43)
    assert choose_qparams(-1.0, 2.0, "int8", symmetric=True) == (np.float32(2.0) / np.float32(127), 0)
    # degenerate range: scale 1, never 0 or NaN
    assert choose_qparams(0.0, 0.0) == (1.0, 0)
    assert choose_qparams(0.0, 0.0, "int8", True) == (1.0, 0)
    s, z = choose_qparams(np.zeros(3), np.zeros(3))
    assert (s == 1).all() and (z == 0).all()
    # a subnormal range still gives a finite 1/scale
    s, _ = choose_qparams(0.0, 1e-40)
    assert np.isfinite(np.float32(1) / s)
    # huge range: hi - lo overflows float32 but the scale does not
    s, z = choose_qparams(-3e38, 3e38)
    assert np.isfinite(s) and 0 <= z <= 255


def test_choose_qparams_errors():
    for lo, hi in ((np.nan, 1.0), (0.0, np.inf), (-np.inf, 0.0), (np.array([0.0, np.nan]), 1.0)):
        with pytest.raises(ValueError, match="NaN or Inf"):
            choose_qparams(lo, hi)
    with pytest.raises(ValueError, match="float32 range"):
        choose_qparams(-1e300, 1.0)
    with pytest.raises(ValueError, match="lo must be <= hi"):
        choose_qparams(2.0, 1.0)
    with pytest.raises(ValueError, match="dtype"):
        choose_qparams(0.0, 1.0, "uint16")


# ---------------------------------------------------------------------------------------------
# against the native core


@pytest.fixture(scope="module")
def eye_weight():
    k = 96  # identity int8 codes with scale 1: matmul returns (x - x_zp) * x_scale per element
    return mixq.pack_weights(np.eye(k, dtype=np.int8), bits=8, scale=1.0)


def test_requantize_matches_core(isa, rng, eye_weight):
    k = eye_weight.shape[1]
    xq = rng.integers(0, 256, (29, k)).astype(np.uint8)
    # x_scale 0.5, out_scale 1: every odd (x - zp) lands exactly on a tie
    y = mixq.matmul(xq, eye_weight, x_scale=0.5, x_zero_point=100)
    np.testing.assert_array_equal(y, dequantize(xq, 0.5, 100))
    out = mixq.matmul(xq, eye_weight, x_scale=0.5, x_zero_point=100, out_dtype="uint8", out_scale=1.0,
                      out_zero_point=3)
    np.testing.assert_array_equal(out, quantize(y, 1.0, 3))
    away = np.clip(np.sign(y) * np.floor(np.abs(y) + 0.5) + 3, 0, 255)
    assert (out != away).any()  # ties present: half-away-from-zero would differ
    for _ in range(6):
        xs, os_ = (float(v) for v in rng.uniform(1e-3, 1.0, 2))
        xz, oz = (int(v) for v in rng.integers(0, 256, 2))
        y = mixq.matmul(xq, eye_weight, x_scale=xs, x_zero_point=xz)
        np.testing.assert_array_equal(y, dequantize(xq, xs, xz))
        u8 = mixq.matmul(xq, eye_weight, x_scale=xs, x_zero_point=xz, out_dtype="uint8", out_scale=os_,
                         out_zero_point=oz)
        np.testing.assert_array_equal(u8, quantize(y, os_, oz, "uint8"))
        s8 = mixq.matmul(xq, eye_weight, x_scale=xs, x_zero_point=xz, out_dtype="int8", out_scale=os_,
                         out_zero_point=oz - 128)
        np.testing.assert_array_equal(s8, quantize(y, os_, oz - 128, "int8"))


def test_dynamic_activation_quantization_matches_core(isa, rng, eye_weight):
    """float32 x with int8 weights: the core quantizes each row to uint8 with exactly
    choose_qparams(row min, row max) and quantize()."""
    k = eye_weight.shape[1]
    x = (rng.standard_normal((40, k)) * rng.uniform(1e-3, 1e3, (40, 1))).astype(np.float32)
    x[0] = np.abs(x[0])  # all positive
    x[1] = -np.abs(x[1])  # all negative
    x[2] = 0.0  # degenerate
    x[3] = 1.5
    scale, zp = choose_qparams(x.min(axis=1), x.max(axis=1))
    np.testing.assert_array_equal(mixq.matmul(x, eye_weight), fake_quant(x, scale, zp, axis=0))


# ---------------------------------------------------------------------------------------------
# weights: exactly what pack_weights packs

_WEIGHT_CASES = [(8, None, True), (8, None, False)] + [
    (bits, group, sym) for bits in (4, 2) for group in (None, 32, 128) for sym in (True, False)]


@pytest.mark.parametrize("bits,group,symmetric", _WEIGHT_CASES)
def test_fake_quant_weight_matches_packed(rng, bits, group, symmetric):
    n, k = 40, 200  # K not a multiple of 32/128: partial last group
    w = (rng.standard_normal((n, k)) * rng.uniform(0.01, 2.0, (n, 1))).astype(np.float32)
    w[3] = 0.0
    w[4, :] = np.abs(w[4, :])
    packed = mixq.pack_weights(w, bits, group_size=group, symmetric=symmetric)
    fq = fake_quant_weight(w, bits, group, symmetric)
    assert fq.dtype == np.float32 and fq.shape == w.shape
    # identity uint8 input with x_scale 1, x_zp 0: the output is W exactly as the core uses it
    out = mixq.matmul(np.eye(k, dtype=np.uint8), packed, x_scale=1.0, x_zero_point=0)
    np.testing.assert_array_equal(out.T, fq)
    if bits != 8:  # the weight-only path dequantizes the same values
        np.testing.assert_array_equal(mixq.matmul(np.eye(k, dtype=np.float32), packed, act="fp32").T, fq)

    codes, scale, zp = quantize_weight(w, bits, group, symmetric)
    assert codes.shape == (n, k)
    np.testing.assert_array_equal(scale, packed.scale)
    if zp is None:
        assert bits == 8 and symmetric and packed.zero_point is None
        assert codes.dtype == np.int8 and np.abs(codes.astype(int)).max() <= 127
    else:
        np.testing.assert_array_equal(zp, packed.zero_point)
    if bits != 8:
        assert codes.dtype == np.uint8 and codes.max() < (1 << bits)
        assert scale.shape == (n, -(-k // group) if group else 1)
    # the codes re-pack into the very same packed weight
    again = mixq.pack_weights(codes, bits, scale, zp, group_size=group)
    assert again.to_bytes() == packed.to_bytes()
    assert np.abs(fq - w).max() <= np.abs(w).max() / 2  # sanity: it is an approximation of w


def test_fake_quant_weight_clip_search(rng):
    w = rng.standard_normal((16, 128)).astype(np.float32)
    packed = mixq.pack_weights(w, 4, group_size=32, clip_search=True)
    fq = fake_quant_weight(w, 4, 32, clip_search=True)
    out = mixq.matmul(np.eye(128, dtype=np.float32), packed, act="fp32").T
    np.testing.assert_array_equal(out, fq)


def test_fake_quant_weight_conv_and_axis(rng):
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)  # [Cout, Cin, kh, kw]
    for bits, group in ((8, None), (4, None), (4, 32)):
        fq = fake_quant_weight(w, bits, group)
        assert fq.shape == w.shape
        flat = fake_quant_weight(w.reshape(8, -1), bits, group)
        np.testing.assert_array_equal(fq.reshape(8, -1), flat)
        codes, _, _ = quantize_weight(w, bits, group)
        assert codes.shape == (8, 27)
    w2 = rng.standard_normal((24, 10)).astype(np.float32)
    np.testing.assert_array_equal(fake_quant_weight(w2.T, 8, axis=1), fake_quant_weight(w2, 8).T)
    np.testing.assert_array_equal(fake_quant_weight(w2.T, 2, axis=-1), fake_quant_weight(w2, 2).T)


def test_quantize_weight_errors(rng):
    w = rng.standard_normal((8, 64)).astype(np.float32)
    with pytest.raises(ValueError, match="bits"):
        quantize_weight(w, bits=3)
    with pytest.raises(ValueError, match="group_size must be one of"):
        quantize_weight(w, bits=4, group_size=48)
    with pytest.raises(ValueError, match="apply to bits=4 and bits=2"):
        quantize_weight(w, bits=8, group_size=32)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        fake_quant_weight(w[0], 8)
    with pytest.raises(ValueError, match="axis"):
        fake_quant_weight(w, 8, axis=2)
    with pytest.raises(TypeError, match="float"):
        quantize_weight(w.astype(np.int8))
    bad = w.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fake_quant_weight(bad, 4)


# ---------------------------------------------------------------------------------------------
# observers


def _batches(rng, n_batches=8, size=125_000, heavy=False):
    out = []
    for i in range(n_batches):
        if heavy:
            b = rng.laplace(0.0, 1.0, size).astype(np.float32)
        else:  # later batches spread wider: the histogram range has to grow
            b = (rng.standard_normal(size) * (1.0 + 0.1 * i) + 0.3).astype(np.float32)
        out.append(b.reshape(-1, 125) if i % 2 else b)
    return out


def test_minmax_observer_exact(rng):
    obs = MinMaxObserver()
    data = [rng.standard_normal((3, 50)).astype(np.float32) * (i + 1) for i in range(5)]
    for b in data:
        assert obs.update(b) is obs
    obs.update(np.zeros((0, 4), np.float32))  # empty batches are ignored
    allx = np.concatenate([b.ravel() for b in data])
    assert obs.range() == (allx.min(), allx.max())
    assert obs.count == allx.size and obs.batches == 5
    assert obs.qparams() == choose_qparams(allx.min(), allx.max())
    sym = MinMaxObserver(dtype="int8")
    for b in data:
        sym.update(b)
    s, z = sym.qparams()
    assert z == 0 and s == np.float32(max(-allx.min(), allx.max())) / np.float32(127)


def test_percentile_observer_close_to_numpy(rng):
    batches = _batches(rng)
    allx = np.concatenate([b.ravel() for b in batches])
    for p in (99.99, 99.9, 99.0):
        obs = PercentileObserver(p)
        for b in batches:
            obs.update(b)
        lo, hi = obs.range()
        ref_lo, ref_hi = np.percentile(allx, [100 - p, p])
        width = obs._hist.width
        # one pass, bounded memory: within a bin or so of the exact sample percentile
        assert abs(lo - ref_lo) <= 1.5 * width and abs(hi - ref_hi) <= 1.5 * width, (p, lo, hi, ref_lo, ref_hi)
        assert abs(lo - ref_lo) <= 0.005 * abs(ref_lo) and abs(hi - ref_hi) <= 0.005 * abs(ref_hi)
        assert obs.qparams() == choose_qparams(lo, hi)
    assert obs.count == allx.size and obs.batches == len(batches)
    assert len(obs._hist.counts) == 2048 and obs._hist.counts.sum() == allx.size  # bounded memory
    # growth keeps the resolution: the bins span at most a few times the data
    assert obs._hist.top - obs._hist.origin <= 4 * (allx.max() - allx.min())
    # the grown histogram is the histogram of all the data on its final bin grid
    edges = obs._hist.origin + np.arange(2049) * width
    ref = np.histogram(np.clip(allx.astype(np.float64), edges[0], edges[-1]), edges)[0]
    assert np.abs(ref - obs._hist.counts).sum() <= 1e-4 * allx.size  # only float edge ties differ
    full = PercentileObserver(100.0)
    for b in batches:
        full.update(b)
    assert full.range() == (allx.min(), allx.max())


def test_histogram_grows_far_and_from_constant(rng):
    obs = PercentileObserver(99.0)
    obs.update(np.full(100, 5.0, np.float32))  # constant first batch
    assert obs.range() == (5.0, 5.0)
    wide = rng.uniform(-1e4, 1e4, 10_000).astype(np.float32)
    obs.update(wide)  # a huge jump in range
    obs.update(np.float32([1e6]))
    assert obs._hist.counts.sum() == obs.count == 10_101
    assert obs._hist.origin <= wide.min() and obs._hist.top >= 1e6
    lo, hi = obs.range()
    assert -1e4 <= lo < -9e3 and 9e3 < hi <= 1e4 + obs._hist.width


def test_mse_observer_beats_minmax_on_heavy_tails(rng):
    batches = _batches(rng, heavy=True)
    batches[3].reshape(-1)[:2] = 25.0  # a few outliers
    batches[4].reshape(-1)[:2] = -25.0
    allx = np.concatenate([b.ravel() for b in batches])
    for dtype in ("uint8", "int8"):
        mse, mm = MSEObserver(dtype=dtype), MinMaxObserver(dtype=dtype)
        for b in batches:
            mse.update(b)
            mm.update(b)
        s, z = mse.qparams()
        if dtype == "int8":
            assert z == 0
        lo, hi = mse.range()
        assert allx.min() <= lo <= 0 <= hi <= allx.max() and (lo, hi) != mm.range()
        err_mse = np.mean((fake_quant(allx, s, z, dtype) - allx) ** 2)
        err_mm = np.mean((fake_quant(allx, *mm.qparams(), dtype) - allx) ** 2)
        assert err_mse < 0.8 * err_mm, (dtype, err_mse, err_mm)


def test_mse_observer_keeps_uniform_range(rng):
    obs = MSEObserver()
    for _ in range(4):
        obs.update(rng.uniform(-1.0, 3.0, 50_000).astype(np.float32))
    lo, hi = obs.range()
    assert lo < -0.97 and hi > 2.9  # clipping a uniform distribution only adds error
    relu = MSEObserver()
    relu.update(np.maximum(rng.standard_normal(50_000), 0).astype(np.float32))
    lo, hi = relu.range()
    assert lo == 0.0 and 2.0 < hi
    assert relu.qparams()[1] == 0


def test_observers_constant_and_zero_data():
    for name in ("minmax", "percentile", "mse"):
        obs = make_observer(name)
        obs.update(np.zeros(10, np.float32))
        assert obs.qparams() == (1.0, 0)
        obs = make_observer(name, dtype="int8")
        obs.update(np.full(10, 2.0, np.float32))
        s, z = obs.qparams()
        assert z == 0 and s == np.float32(2.0) / np.float32(127)


def test_observer_errors():
    for name in ("minmax", "percentile", "mse"):
        obs = make_observer(name)
        with pytest.raises(ValueError, match="no data"):
            obs.qparams()
        with pytest.raises(ValueError, match="no data"):
            obs.range()
        obs.update(np.array([1.0, -2.0], np.float32))
        before = obs.range()
        for bad in (np.array([1.0, np.nan], np.float32), np.array([np.inf], np.float32),
                    np.array([1e300])):
            with pytest.raises(ValueError, match="NaN or Inf"):
                obs.update(bad)
        assert obs.range() == before and obs.count == 2  # a rejected batch changes nothing
        obs.reset()
        assert obs.count == 0
        with pytest.raises(ValueError, match="no data"):
            obs.qparams()
    with pytest.raises(ValueError, match="minmax, percentile, mse"):
        make_observer("kl")
    with pytest.raises(ValueError, match="percentile must be"):
        PercentileObserver(percentile=40.0)
    with pytest.raises(ValueError, match="dtype"):
        MinMaxObserver(dtype="float16")
    with pytest.raises(ValueError, match="bins"):
        MSEObserver(bins=4)
    assert isinstance(make_observer("percentile", percentile=99.9, dtype="int8"), PercentileObserver)
