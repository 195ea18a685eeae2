"""Low-bit (int4 / int2, group-wise) weights: packing, and the W4A8 / W2A8 kernels on every ISA.

The integer part (dot products per group) is exact; the float fold per group and the epilogue
round in float32, so outputs are compared with a float64 evaluation of the same formula within
1e-5 of the magnitude of its intermediate terms: sum_k |x_u8| |dequant(w)| * x_scale (the
activation zero point is subtracted after the sum, so that is the size float32 rounds at).
"""

import numpy as np
import pytest

import mixq
from reference import quantize_rows_u8

FORMATS = [(4, 32), (4, 64), (4, 128), (4, None), (2, 32), (2, 64), (2, 128), (2, None)]


def _codes(rng, n, k, bits, group):
    g = group or -(-k // 16) * 16
    n_groups = -(-k // g)
    codes = rng.integers(0, 1 << bits, (n, k), dtype=np.uint8)
    scale = mixq.quant.weights.round_bf16(rng.uniform(0.01, 0.1, (n, n_groups)))  # stored as bf16
    zp = rng.integers(0, 1 << bits, (n, n_groups)).astype(np.uint8)
    return codes, scale, zp, g


def _dequantize(codes, scale, zp, g):
    n, k = codes.shape
    groups = np.arange(k) // g
    return (codes.astype(np.float64) - zp[:, groups]) * scale[:, groups]


def _reference(x_u8, x_scale, x_zp, codes, scale, zp, g):
    """sa * sum_k (x - za) * dequant(w): evaluated exactly in float64 / int64."""
    wd = _dequantize(codes, scale, zp, g)
    y = (x_u8.astype(np.float64) - x_zp) @ wd.T * x_scale
    mag = (np.abs(x_u8.astype(np.float64)) + abs(x_zp)) @ np.abs(wd).T * x_scale
    return y, mag


@pytest.mark.parametrize("bits,group", FORMATS, ids=str)
@pytest.mark.parametrize("m,n,k", [(1, 33, 128), (2, 130, 64), (1, 100, 96), (7, 64, 100), (13, 40, 257),
                                   (100, 70, 300), (197, 33, 257), (130, 45, 30), (200, 32, 8192),
                                   (1, 40, 20000)])
def test_static_u8_activations(isa, rng, bits, group, m, n, k):
    codes, scale, zp, g = _codes(rng, n, k, bits, group)
    p = mixq.pack_weights(codes, bits=bits, group_size=group, scale=scale, zero_point=zp)
    x = rng.integers(0, 256, (m, k), dtype=np.uint8)
    got = mixq.matmul(x, p, x_scale=0.05, x_zero_point=17)
    expect, mag = _reference(x, 0.05, 17, codes, scale, zp, g)
    assert np.all(np.abs(got - expect) <= 1e-5 * mag + 1e-6)
    kernel = mixq.last_kernel()
    # Codes unpacked to s8 once per row block: from 96 rows, or from 12 for small weights (<= 2^18
    # codes; from 192 rows those are unpacked once per call: (197, 33, 257) with a partial group,
    # (200, 32, 8192) with K in several slices). A small weight (<= 2^16 codes) with one group over
    # all of K, from 96 rows, is an int8 GEMM on code - zp. Otherwise the codes are unpacked in
    # registers.
    unpack_once = m >= 96 or (m >= 12 and n * k <= 1 << 18)
    if isa == "avx512vnni" and m >= 96 and g >= k and n * k <= 1 << 16:
        assert kernel.startswith("u8s8s32_gemm_") and kernel.endswith("__avx512vnni")
    elif isa == "avx512vnni" and unpack_once:
        assert kernel.startswith("u8s8f32_groupwise_") and kernel.endswith("__avx512vnni")
    else:
        # Below VNNI the AVX2 low-bit kernels serve every row count (there is no groupwise kernel).
        level = {"avx512vnni": "avx512vnni", "avx512": "avx2", "avx2": "avx2"}.get(isa, "ref")
        assert kernel.startswith(f"u8u{bits}f32_") and kernel.endswith("__" + level)


@pytest.mark.parametrize("bits,group", [(4, 128), (2, 64)], ids=str)
def test_signed_activations_bias_and_requantized_output(rng, bits, group):
    m, n, k = 9, 50, 256
    codes, scale, zp, g = _codes(rng, n, k, bits, group)
    p = mixq.pack_weights(codes, bits=bits, group_size=group, scale=scale, zero_point=zp)
    x = rng.integers(-128, 128, (m, k), dtype=np.int8)
    bias = rng.standard_normal(n).astype(np.float32)
    y = mixq.matmul(x, p, bias, clamp="relu", x_scale=0.02, x_zero_point=-3)
    expect, mag = _reference(x.astype(np.int64) + 128, 0.02, 125, codes, scale, zp, g)
    expect = np.maximum(expect + bias, 0)
    assert np.all(np.abs(y - expect) <= 1e-5 * mag + 1e-5)
    q = mixq.matmul(x, p, bias, clamp="relu", x_scale=0.02, x_zero_point=-3, out_dtype=np.uint8,
                    out_scale=0.1, out_zero_point=0)
    assert np.abs(q.astype(int) - np.clip(np.rint(expect / 0.1), 0, 255)).max() <= 1


@pytest.mark.parametrize("bits,group", FORMATS, ids=str)
@pytest.mark.parametrize("m", [5, 130])
def test_dynamic_float_activations(isa, rng, bits, group, m):
    n, k = 70, 300
    w = rng.standard_normal((n, k)).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    p = mixq.pack_weights(w, bits=bits, group_size=group)
    got = mixq.matmul(x, p)
    q, s, z = quantize_rows_u8(x)
    codes_scale, codes_zp = p.scale, p.zero_point
    g = p.group_size
    # Rebuild the codes from the dequantization the packer promises (round to nearest).
    groups = np.arange(k) // g
    codes = np.clip(np.rint(w / codes_scale[:, groups]) + codes_zp[:, groups], 0, (1 << bits) - 1)
    wd = (codes - codes_zp[:, groups]) * codes_scale[:, groups]
    expect = ((q.astype(np.float64) - z[:, None]) * s[:, None]) @ wd.T
    mag = ((q.astype(np.float64) + z[:, None]) * s[:, None]) @ np.abs(wd).T
    assert np.all(np.abs(got - expect) <= 1e-5 * mag + 1e-5)


@pytest.mark.parametrize("bits,group", FORMATS, ids=str)
@pytest.mark.parametrize("m,n,k", [(1, 33, 128), (6, 64, 100), (11, 40, 257)])
def test_weight_only_fp32_activations(isa, rng, bits, group, m, n, k):
    codes, scale, zp, g = _codes(rng, n, k, bits, group)
    p = mixq.pack_weights(codes, bits=bits, group_size=group, scale=scale, zero_point=zp)
    x = rng.standard_normal((m, k)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    got = mixq.matmul(x, p, bias, clamp="relu6", act="fp32")
    wd = _dequantize(codes, scale, zp, g)
    expect = np.clip(x.astype(np.float64) @ wd.T + bias, 0, 6)
    mag = np.abs(x.astype(np.float64)) @ np.abs(wd).T + 1
    assert np.all(np.abs(got - expect) <= 1e-5 * mag)
    level = {"avx512vnni": "avx512", "avx512": "avx512", "avx2": "avx2"}.get(isa, "ref")  # the forced path ran
    assert mixq.last_kernel() == f"f32u{bits}f32_gemm_4x32__{level}"


@pytest.mark.parametrize("bits,group", [(4, 32), (4, 128), (2, 64), (4, None)], ids=str)
def test_groupwise_unpack_is_codes_minus_zero_points_on_every_isa(rng, bits, group):
    """The groupwise path's unpack (once per row block): per panel and group, the s8 codes minus
    their zero points in the [step][32][4] layout, then the group's scales as fp32; every ISA's
    unpack equals the reference byte for byte."""
    n, k = 40, 300
    codes, scale, zp, g = _codes(rng, n, k, bits, group)
    p = mixq.pack_weights(codes, bits=bits, group_size=group, scale=scale, zero_point=zp)
    ref = mixq._core.unpack_lowbit_s8("ref", p._core)
    n_panels, n_groups, group_bytes = ref.shape
    steps = g // 4
    assert (n_panels, n_groups, group_bytes) == (-(-n // 32), -(-k // g), steps * 128 + 128)
    # [panel, group, step, column, k in step] -> [column, k]
    got = ref[:, :, :steps * 128].reshape(n_panels, n_groups, steps, 32, 4)
    got = got.transpose(0, 3, 1, 2, 4).reshape(n_panels * 32, n_groups * g)[:n, :k]
    groups = np.arange(k) // g
    np.testing.assert_array_equal(got, codes.astype(np.int16) - zp[:, groups])
    scales = np.ascontiguousarray(ref[:, :, steps * 128:]).view(np.float32).reshape(n_panels, n_groups, 32)
    np.testing.assert_array_equal(scales.transpose(0, 2, 1).reshape(n_panels * 32, n_groups)[:n], scale)
    for isa in [i for i in mixq.available_isas() if i != "avx512vnni"]:  # vnni reuses the avx512 helpers
        assert mixq._core.unpack_lowbit_s8(isa, p._core).tobytes() == ref.tobytes(), isa


@pytest.mark.parametrize("bits,group", FORMATS, ids=str)
@pytest.mark.parametrize("m,n,k", [(1, 33, 128), (2, 130, 64), (6, 64, 100), (11, 40, 257)])
def test_weight_only_bf16_activations(isa, rng, bits, group, m, n, k):
    """W4A16 / W2A16: x rounded to bf16, weights exact; bf16 x code products are exact in fp32,
    so only the fp32 sums round."""
    codes, scale, zp, g = _codes(rng, n, k, bits, group)
    p = mixq.pack_weights(codes, bits=bits, group_size=group, scale=scale, zero_point=zp)
    x = rng.standard_normal((m, k)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    got = mixq.matmul(x, p, bias, clamp="relu", act="bf16")
    xb = mixq.quant.weights.round_bf16(x).astype(np.float64)
    wd = _dequantize(codes, scale, zp, g)
    expect = np.maximum(xb @ wd.T + bias, 0)
    mag = np.abs(xb) @ np.abs(wd).T + 1
    assert np.all(np.abs(got - expect) <= 1e-5 * mag)
    kernel = mixq.last_kernel()
    assert kernel.startswith(f"bf16u{bits}f32_")
    # AVX512-BF16 where the CPU has it, else the AVX2 kernel (on fp32-widened rows) above ref.
    has_bf16 = mixq.cpu_info()["features"]["avx512bf16"]
    level = "avx512bf16" if isa.startswith("avx512") and has_bf16 else "ref" if isa == "ref" else "avx2"
    assert kernel.endswith("__" + level)


@pytest.mark.parametrize("bits", [4, 2])
@pytest.mark.parametrize("symmetric", [True, False])
def test_quantizer_error_bound_and_clip_search(rng, bits, symmetric):
    w = rng.standard_normal((64, 256)).astype(np.float32)
    p = mixq.pack_weights(w, bits=bits, group_size=64, symmetric=symmetric)
    assert p.scale.shape == (64, 4) and p.zero_point.shape == (64, 4)
    groups = np.arange(256) // 64
    s, z = p.scale[:, groups], p.zero_point[:, groups]
    codes = np.clip(np.rint(w / s) + z, 0, (1 << bits) - 1)
    wd = (codes - z) * s
    inside = (w / s + z >= 0) & (w / s + z <= (1 << bits) - 1)  # not clipped
    assert np.all(np.abs(wd - w)[inside] <= 0.5 * s[inside] + 1e-6)
    clipped = mixq.pack_weights(w, bits=bits, group_size=64, symmetric=symmetric, clip_search=True)
    gs, gz = clipped.scale[:, groups], clipped.zero_point[:, groups]
    wc = (np.clip(np.rint(w / gs) + gz, 0, (1 << bits) - 1) - gz) * gs
    assert ((wc - w) ** 2).sum() <= ((wd - w) ** 2).sum() + 1e-6


def test_memory_cost_and_round_trip(rng):
    n, k = 96, 4096
    w = rng.standard_normal((n, k)).astype(np.float32)
    p4 = mixq.pack_weights(w, bits=4, group_size=128)
    p2 = mixq.pack_weights(w, bits=2, group_size=64)
    # codes + per group and column: bf16 scale and u8 zero point in the panels, u8 zero point
    # for serialization; f32 column sums
    assert p4.nbytes == n * k // 2 + (k // 128) * n * 4 + 4 * n
    assert p2.nbytes == n * k // 4 + (k // 64) * n * 4 + 4 * n
    x = rng.standard_normal((3, k)).astype(np.float32)
    for p in (p4, p2):
        q = mixq.PackedWeight.from_bytes(p.to_bytes())
        assert (q.bits, q.group_size, q.shape, q.nbytes) == (p.bits, p.group_size, p.shape, p.nbytes)
        np.testing.assert_array_equal(mixq.matmul(x, q), mixq.matmul(x, p))
        blob = bytearray(p.to_bytes())
        blob[-5] ^= 1
        with pytest.raises(ValueError, match="checksum"):
            mixq.PackedWeight.from_bytes(bytes(blob))


def test_low_bit_errors(rng):
    w = rng.standard_normal((8, 64)).astype(np.float32)
    with pytest.raises(ValueError, match="group_size"):
        mixq.pack_weights(w, bits=4, group_size=48)
    with pytest.raises(ValueError, match="< 16"):
        mixq.pack_weights(np.full((8, 64), 16, np.uint8), bits=4, scale=np.ones((8, 1), np.float32))
    with pytest.raises(ValueError, match="shape"):
        mixq.pack_weights(np.zeros((8, 64), np.uint8), bits=4, group_size=32, scale=np.ones((8, 1), np.float32))
    with pytest.raises(TypeError, match="uint8 codes"):
        mixq.pack_weights(np.zeros((8, 64), np.int8), bits=4)
    p = mixq.pack_weights(w, bits=4, group_size=32)
    with pytest.raises(ValueError, match="int32"):
        mixq.matmul(np.zeros((2, 64), np.uint8), p, x_scale=1.0, x_zero_point=0, out_dtype=np.int32)
    with pytest.raises(ValueError, match="NaN or Inf"):
        mixq.matmul(np.full((2, 64), np.nan, np.float32), p)
    with pytest.raises(ValueError, match="NaN or Inf"):
        mixq.matmul(np.full((2, 64), np.inf, np.float32), p, act="fp32")
    with pytest.raises(ValueError, match="act"):
        mixq.matmul(np.zeros((2, 64), np.float32), p, act="fp16")
    with pytest.raises(ValueError, match="int4 or int2"):
        mixq.matmul(np.zeros((2, 64), np.float32), mixq.pack_weights(w), act="fp32")
