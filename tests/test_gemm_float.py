"""Float, requantized and dynamic-quantized outputs, and the fp32/bf16 kernels.

Documented tolerances:
- int8 weights, float output: the integer part is exact, so the output equals
  corr * (x_scale * w_scale) + bias up to float32 rounding: |err| <= 1e-6 * |y| + 1e-6.
- requantized uint8/int8 output: within +-1 of round(y / out_scale) + out_zero_point.
- fp32 kernel: matches a float64 matmul within 1e-5 relative (of sum |x||w|).
- bf16 kernel: operands rounded to bf16: within 1e-2 relative (of sum |x||w|).
- dynamic W8A8: equal to the scalar reference path within 1e-5, and to the float product within
  the quantization error bound.
"""

import numpy as np
import pytest

import mixq
from reference import int_matmul_wrapped, quantize_rows_u8

ACTIVATIONS = [None, "relu", "relu6", ("clamp", -0.5, 2.0)]


def _apply(y, activation):
    lo, hi = {None: (-np.inf, np.inf), "relu": (0, np.inf), "relu6": (0, 6)}.get(
        activation if not isinstance(activation, tuple) else None, (None, None))
    if isinstance(activation, tuple):
        lo, hi = activation[1:]
    return np.clip(y, lo, hi)


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=str)
@pytest.mark.parametrize("m,n,k", [(1, 33, 70), (13, 64, 129), (50, 97, 300)])
def test_static_int8_float_output(isa, rng, m, n, k, activation):
    w = rng.integers(-127, 128, (n, k), dtype=np.int8)
    w_scale = rng.uniform(0.001, 0.01, n).astype(np.float32)
    p = mixq.pack_weights(w, bits=8, scale=w_scale)
    x = rng.integers(0, 256, (m, k), dtype=np.uint8)
    bias = rng.standard_normal(n).astype(np.float32)
    got = mixq.matmul(x, p, bias, clamp=activation, x_scale=0.02, x_zero_point=128)
    corr = int_matmul_wrapped(x, w, 128).astype(np.float64)
    expect = _apply(corr * (np.float32(0.02) * w_scale.astype(np.float64)) + bias, activation)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expect, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("out", ["uint8", "int8"])
@pytest.mark.parametrize("activation", [None, "relu"], ids=str)
def test_requantized_output_within_one(isa, rng, out, activation):
    m, n, k = 21, 45, 150
    w = rng.integers(-127, 128, (n, k), dtype=np.int8)
    w_scale = np.full(n, 0.004, np.float32)
    p = mixq.pack_weights(w, bits=8, scale=w_scale)
    x = rng.integers(-128, 128, (m, k), dtype=np.int8)
    bias = rng.standard_normal(n).astype(np.float32)
    out_scale, out_zp = 0.05, (10 if out == "uint8" else -3)
    got = mixq.matmul(x, p, bias, clamp=activation, out_dtype=out, x_scale=0.03, x_zero_point=-5,
                      out_scale=out_scale, out_zero_point=out_zp)
    y = _apply(int_matmul_wrapped(x, w, -5) * (0.03 * 0.004) + bias, activation)
    info = np.iinfo(out)
    expect = np.clip(np.rint(y / out_scale) + out_zp, info.min, info.max)
    assert got.dtype == np.dtype(out)
    assert np.abs(got.astype(np.int64) - expect).max() <= 1
    assert (got == expect).mean() > 0.95


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (5, 33, 17), (15, 70, 301), (129, 65, 64)])
def test_fp32_kernel(isa, rng, m, n, k):
    w = rng.standard_normal((n, k)).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    p = mixq.pack_weights(w, bits=32)
    got = mixq.matmul(x, p, bias, clamp="relu")
    expect = np.maximum(x.astype(np.float64) @ w.T.astype(np.float64) + bias, 0)
    scale = np.abs(x) @ np.abs(w).T + 1
    assert np.all(np.abs(got - expect) <= 1e-5 * scale)


@pytest.mark.parametrize("m,n,k", [(1, 40, 3), (9, 64, 130), (30, 33, 255)])
def test_bf16_kernel(isa, rng, m, n, k):
    w = rng.standard_normal((n, k)).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    p = mixq.pack_weights(w, bits=16)
    assert p.bits == 16
    got = mixq.matmul(x, p)
    expect = x.astype(np.float64) @ w.T.astype(np.float64)
    scale = np.abs(x) @ np.abs(w).T + 1
    assert np.all(np.abs(got - expect) <= 1e-2 * scale)
    # Against the bf16-rounded operands the products are exact: only the fp32 sums round.
    xb, wb = (mixq.quant.weights.round_bf16(v).astype(np.float64) for v in (x, w))
    assert np.all(np.abs(got - xb @ wb.T) <= 1e-5 * scale)
    has_bf16 = mixq.cpu_info()["features"]["avx512bf16"]
    level = "avx512bf16" if isa.startswith("avx512") and has_bf16 else "ref" if isa == "ref" else "avx2"
    assert mixq.last_kernel().endswith("__" + level)  # the forced path ran


def test_quantize_rows_matches_numpy_reference_on_every_isa(rng):
    x = (rng.standard_normal((37, 301)) * rng.uniform(0.1, 10, (37, 1))).astype(np.float32)
    x[3] = 0.0  # an all-zero row gets scale 1, zero point 0
    x[4] = np.abs(x[4])  # no negatives: zero point 0
    q_ref, s_ref, z_ref = quantize_rows_u8(x)
    for isa_name in mixq.available_isas():
        if isa_name == "avx512vnni":
            continue  # uses the avx512 helper set
        q, s, z = mixq._core.quantize_rows_u8(isa_name, x)
        np.testing.assert_array_equal(s, s_ref)
        np.testing.assert_array_equal(z, z_ref)
        assert np.abs(q.astype(int) - q_ref).max() <= 1  # float rounding ties only
        assert (q == q_ref).mean() > 0.999


def test_dynamic_w8a8(isa, rng):
    m, n, k = 33, 70, 257
    w = rng.standard_normal((n, k)).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    p = mixq.pack_weights(w)  # symmetric per-channel int8
    got = mixq.matmul(x, p, bias)
    # Exact recomputation from the same quantized operands.
    q, s, z = quantize_rows_u8(x)
    wq = np.clip(np.rint(w / p.scale[:, None]), -127, 127).astype(np.int8)
    corr = (q.astype(np.int64) - z[:, None]) @ wq.T.astype(np.int64)
    expect = corr * (s[:, None].astype(np.float64) * p.scale[None, :]) + bias
    np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-3 * np.abs(expect).max())
    # And close to the float product: error bounded by the quantization steps.
    exact = x.astype(np.float64) @ w.T.astype(np.float64) + bias
    bound = 0.5 * (s[:, None] * np.abs(w).sum(1)[None, :] + np.abs(x).sum(1)[:, None] * p.scale[None, :])
    assert np.all(np.abs(got - exact) <= bound * 1.01 + 1e-4)


def test_asymmetric_float_weights(rng):
    w = rng.uniform(-0.2, 1.0, (40, 64)).astype(np.float32)
    x = rng.standard_normal((6, 64)).astype(np.float32)
    p = mixq.pack_weights(w, symmetric=False)
    assert p.zero_point is not None and p.zero_point.shape == (40,)
    got = mixq.matmul(x, p)
    exact = x @ w.T
    assert np.abs(got - exact).max() < 0.05 * np.abs(exact).max()


def test_batched_and_vector_inputs(rng):
    w = rng.standard_normal((20, 16)).astype(np.float32)
    p = mixq.pack_weights(w, bits=32)
    x = rng.standard_normal((2, 3, 16)).astype(np.float32)
    out = mixq.matmul(x, p)
    assert out.shape == (2, 3, 20)
    np.testing.assert_allclose(out, x @ w.T, rtol=1e-5, atol=1e-5)
    assert mixq.matmul(x[0, 0], p).shape == (20,)


@pytest.mark.parametrize("n", [2048, 2000])
def test_large_outputs_written_past_the_cache_match(rng, n):
    # Outputs larger than L2 take the streaming stores (whole aligned lines; n = 2000 leaves rows
    # that start mid-line and a masked tail): every path must write the same values as for a
    # small output.
    m, k = 1100, 96
    w = rng.integers(-127, 128, (n, k), dtype=np.int8)
    w_scale = rng.uniform(0.001, 0.01, n).astype(np.float32)
    p8 = mixq.pack_weights(w, bits=8, scale=w_scale)
    x = rng.integers(0, 256, (m, k), dtype=np.uint8)
    bias = rng.standard_normal(n).astype(np.float32)
    got = mixq.matmul(x, p8, bias, x_scale=0.02, x_zero_point=128)
    expect = int_matmul_wrapped(x, w, 128).astype(np.float64) * (np.float32(0.02) * w_scale.astype(np.float64)) + bias
    np.testing.assert_allclose(got, expect, rtol=1e-6, atol=1e-6)
    xf = rng.standard_normal((m, k)).astype(np.float32)
    small = np.concatenate([mixq.matmul(xf[r:r + 8], p8) for r in range(0, m, 8)])
    np.testing.assert_array_equal(mixq.matmul(xf, p8), small)  # dynamic int8: rows are independent
    wf = rng.standard_normal((n, k)).astype(np.float32)
    pf = mixq.pack_weights(wf, bits=32)
    big = mixq.matmul(xf, pf, bias)
    np.testing.assert_array_equal(big, np.concatenate([mixq.matmul(xf[r:r + 8], pf, bias) for r in range(0, m, 8)]))
