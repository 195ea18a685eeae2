"""NHWC depthwise convolution (mixq._core.dwconv_u8 / dwconv_f32) against a numpy reference, on
every kernel path this machine can run (the `isa` fixture)."""

import numpy as np
import pytest

import mixq
from mixq import _core

INF = float("inf")


# ----------------------------------------------------------------------------- numpy reference
def out_size(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def ref_conv(x, w, stride, padding, dilation, x_zp=0, dtype=np.int64):
    """sum over taps of (x - x_zp) * w, padding contributes 0. x [N,H,W,C], w [KH,KW,C]."""
    N, H, W, C = x.shape
    KH, KW, _ = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    OH, OW = out_size(H, KH, sh, ph, dh), out_size(W, KW, sw, pw, dw)
    xp = np.zeros((N, H + 2 * ph, W + 2 * pw, C), dtype)
    xp[:, ph : ph + H, pw : pw + W] = x.astype(dtype) - x_zp
    acc = np.zeros((N, OH, OW, C), dtype)
    for kh in range(KH):
        for kw in range(KW):
            r, c = kh * dh, kw * dw
            acc += xp[:, r : r + (OH - 1) * sh + 1 : sh, c : c + (OW - 1) * sw + 1 : sw] * w[kh, kw].astype(dtype)
    return acc


def ref_epilogue(acc, mult, bias, lo, hi):
    """The core's float steps: float32(acc) * mult + bias (two roundings), then the clamp."""
    y = acc.astype(np.float32) * mult.astype(np.float32)
    if bias is not None:
        y = y + bias.astype(np.float32)
    return np.minimum(np.maximum(y, np.float32(lo)), np.float32(hi)).astype(np.float32)


def ref_requant(y, out_scale, out_zp):
    """nearbyint(y * (1/out_scale)) + zp, clamped to u8; also returns where y/scale is near a tie."""
    v = y * (np.float32(1) / np.float32(out_scale))
    near_tie = np.abs(np.abs(v - np.floor(v)) - 0.5) < 1e-3
    q = np.clip(np.rint(v) + np.float32(out_zp), 0, 255).astype(np.uint8)
    return q, near_tie


def check_u8(got, want, near_tie):
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    assert np.all(diff[~near_tie] == 0), f"{int(np.sum(diff[~near_tie] != 0))} mismatches away from ties"
    assert np.all(diff <= 1)


def int8_case(rng, N, H, W, C, K, x_zp=None):
    KH, KW = K
    x = rng.integers(0, 256, (N, H, W, C), dtype=np.uint8)
    w = rng.integers(-128, 128, (KH, KW, C), dtype=np.int8)
    zp = int(rng.integers(0, 256)) if x_zp is None else x_zp
    mult = (rng.uniform(0.5, 2.0, C) * 1e-4).astype(np.float32)
    bias = rng.normal(0, 0.5, C).astype(np.float32)
    return x, w, zp, mult, bias


# ----------------------------------------------------------------------------- int8
GEOMETRIES = [
    # (N, H, W, C, (KH, KW), stride, padding, dilation)
    (1, 9, 11, 16, (3, 3), (1, 1), (1, 1), (1, 1)),
    (2, 10, 9, 17, (3, 3), (2, 2), (1, 1), (1, 1)),
    (1, 12, 13, 96, (3, 3), (1, 1), (1, 1), (1, 1)),
    (1, 13, 12, 144, (3, 3), (2, 2), (1, 1), (1, 1)),
    (1, 8, 19, 3, (3, 3), (1, 1), (0, 0), (1, 1)),
    (2, 9, 9, 1, (3, 3), (2, 1), (1, 0), (1, 1)),
    (1, 11, 14, 33, (5, 5), (1, 1), (2, 2), (1, 1)),
    (1, 11, 14, 40, (5, 5), (2, 2), (2, 2), (1, 1)),
    (1, 10, 17, 17, (7, 7), (1, 1), (3, 3), (1, 1)),
    (1, 10, 17, 24, (7, 7), (2, 2), (2, 1), (1, 1)),
    (2, 7, 10, 17, (1, 1), (1, 1), (0, 0), (1, 1)),
    (1, 7, 10, 17, (1, 1), (2, 2), (1, 1), (1, 1)),
    (1, 12, 12, 17, (3, 3), (1, 1), (2, 2), (2, 2)),
    (1, 12, 15, 20, (3, 3), (2, 1), (2, 1), (2, 3)),
    (1, 12, 19, 17, (3, 3), (1, 1), (2, 1), (2, 1)),  # dilated rows only: the fixed kernels
    (1, 9, 10, 16, (2, 4), (1, 3), (1, 2), (1, 1)),
    (1, 1, 1, 17, (3, 3), (1, 1), (1, 1), (1, 1)),  # 1x1 image: only the centre tap
    (2, 2, 3, 3, (3, 3), (1, 1), (1, 1), (1, 1)),
    (1, 2, 3, 16, (3, 3), (2, 2), (1, 1), (1, 1)),
    (1, 1, 1, 5, (1, 1), (1, 1), (2, 2), (1, 1)),  # all-padding border outputs
    (1, 7, 7, 160, (3, 3), (1, 1), (1, 1), (1, 1)),  # MobileNetV2's last depthwise shape, narrower
    (1, 5, 30, 32, (3, 3), (1, 1), (1, 1), (1, 1)),  # 16-pixel tiles, full-width interior columns
    (2, 7, 33, 48, (3, 3), (2, 2), (1, 1), (1, 1)),  # 8-pixel stride-2 tiles
    (1, 6, 21, 24, (3, 3), (1, 2), (0, 2), (1, 1)),  # stride 2 along W only, wide padding
    (1, 9, 10, 33, (3, 3), (2, 2), (0, 0), (1, 1)),  # stride 2 both ways (row pairs), no padding
    (2, 6, 13, 24, (3, 3), (2, 2), (2, 1), (1, 1)),  # row pairs reaching below the image
    (2, 6, 9, 192, (3, 3), (1, 1), (1, 1), (1, 1)),  # 64-channel super-blocks only
    (1, 5, 12, 136, (3, 3), (1, 1), (0, 2), (1, 1)),  # two super-blocks, then a partial block
    (2, 9, 11, 200, (3, 3), (2, 2), (1, 1), (1, 1)),  # stride-2 super-blocks, a whole and a partial block
    (1, 8, 7, 64, (3, 3), (2, 2), (0, 1), (1, 1)),  # one stride-2 super-block, no padding above
]


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    """One thread: a task spans a whole image (rows in pairs, odd heights); two: bands of rows."""
    before = mixq.get_num_threads()
    mixq.set_num_threads(request.param)
    yield request.param
    mixq.set_num_threads(before)


@pytest.mark.parametrize("N,H,W,C,K,stride,padding,dilation", GEOMETRIES)
def test_int8_matches_reference(isa, threads, rng, N, H, W, C, K, stride, padding, dilation):
    x, w, zp, mult, bias = int8_case(rng, N, H, W, C, K)
    packed = _core.pack_depthwise_s8(w)
    acc = ref_conv(x, w, stride, padding, dilation, zp)
    lo, hi = -2.0, 3.0
    want_f = ref_epilogue(acc, mult, bias, lo, hi)
    got_f = _core.dwconv_u8(packed, x, zp, stride, padding, dilation, mult, bias, lo, hi, 1.0, 0, "float32")
    assert got_f.dtype == np.float32 and got_f.shape == want_f.shape
    np.testing.assert_allclose(got_f, want_f, rtol=1e-6, atol=0)

    out_scale, out_zp = 0.02, 100
    want_q, near_tie = ref_requant(want_f, out_scale, out_zp)
    got_q = _core.dwconv_u8(packed, x, zp, stride, padding, dilation, mult, bias, lo, hi, out_scale, out_zp, "uint8")
    assert got_q.dtype == np.uint8
    check_u8(got_q, want_q, near_tie)
    # Without bias and clamp: the accumulator itself (mult = 1) is exact.
    ones = np.ones(C, np.float32)
    got_acc = _core.dwconv_u8(packed, x, zp, stride, padding, dilation, ones, None, -INF, INF, 1.0, 0, "float32")
    np.testing.assert_array_equal(got_acc, acc.astype(np.float32))


def test_int8_epilogue_rounds_product_then_sum(isa):
    """y = float(acc) * mult + bias rounds the product, then the sum, as the reference does. Each
    channel's bias cancels most of its rounded product p_r so that p_r + bias is exactly a tie
    k + 0.5; the exact product p + bias (what one FMA would round) is off the tie for most
    channels, and a kernel that fused the two would give their codes the other neighbour."""
    rng = np.random.default_rng(5)
    C = 64
    xv = rng.integers(100, 256, C)  # acc = x on the centre tap (zp 0)
    mult = rng.uniform(1.0, 4.0, C).astype(np.float32)
    p_r = xv.astype(np.float32) * mult
    k = rng.integers(0, 60, C)
    bias = (k + 0.5 - p_r).astype(np.float32)  # exact: |bias| < p_r and a multiple of its ulp
    y = p_r + bias
    assert np.all(y == k + 0.5)
    fused = (xv * mult.astype(np.float64) + bias).astype(np.float32)
    assert np.sum(np.rint(fused) != np.rint(y)) >= C // 8  # the case tells the two apart
    x = np.broadcast_to(xv.astype(np.uint8), (1, 3, 5, C)).copy()
    w = np.zeros((3, 3, C), np.int8)
    w[1, 1] = 1
    packed = _core.pack_depthwise_s8(w)
    got = _core.dwconv_u8(packed, x, 0, (1, 1), (1, 1), (1, 1), mult, bias, -INF, INF, 1.0, 128, "uint8")
    np.testing.assert_array_equal(got, np.broadcast_to((np.rint(y) + 128).astype(np.uint8), got.shape))
    got_f = _core.dwconv_u8(packed, x, 0, (1, 1), (1, 1), (1, 1), mult, bias, -INF, INF, 1.0, 0, "float32")
    np.testing.assert_array_equal(got_f, np.broadcast_to(y, got_f.shape))


def test_int8_saturation_and_clamps(isa, rng):
    """Outputs below 0 and above 255 clamp; lo/hi clamp before requantization."""
    x, w, zp, mult, bias = int8_case(rng, 1, 9, 9, 35, (3, 3))
    packed = _core.pack_depthwise_s8(w)
    acc = ref_conv(x, w, (1, 1), (1, 1), (1, 1), zp)
    for lo, hi, scale, ozp in [(-INF, INF, 0.005, 128), (0.0, 6.0, 0.03, 0), (-1.0, 1.0, 0.004, 7)]:
        want, near_tie = ref_requant(ref_epilogue(acc, mult, bias, lo, hi), scale, ozp)
        got = _core.dwconv_u8(packed, x, zp, (1, 1), (1, 1), (1, 1), mult, bias, lo, hi, scale, ozp, "uint8")
        check_u8(got, want, near_tie)
        if lo == -INF:
            assert got.min() == 0 and got.max() == 255


@pytest.mark.parametrize("stride", [(1, 1), (2, 2)])
def test_int8_outputs_beyond_int32_saturate(isa, rng, stride):
    """y / out_scale beyond 2^31 (a huge mult) still lands on the clamp codes; kernels may skip the
    cap that guards the float -> int32 conversion only when no value can get there."""
    C = 72  # a 64-channel super-block and a partial block
    x, w, zp, _, _ = int8_case(rng, 1, 7, 9, C, (3, 3))
    packed = _core.pack_depthwise_s8(w)
    acc = ref_conv(x, w, stride, (1, 1), (1, 1), zp)
    for mult in (np.full(C, 1e6, np.float32), np.where(np.arange(C) % 2, 1e6, 1e-4).astype(np.float32)):
        got = _core.dwconv_u8(packed, x, zp, stride, (1, 1), (1, 1), mult, None, -INF, INF, 0.5, 10, "uint8")
        big = mult[None, None, None, :] > 1
        want = np.where(acc > 0, 255, np.where(acc < 0, 0, 10))
        np.testing.assert_array_equal(got[np.broadcast_to(big, got.shape)], want[np.broadcast_to(big, want.shape)])


@pytest.mark.parametrize("K", [(3, 3), (16, 16), (17, 17), (23, 23)])
def test_int8_many_taps_extreme_values_exact(isa, K):
    """Worst-case magnitudes: (x - zp) * w = 255 * 128 on every tap. Up to 256 taps the SIMD path
    accumulates in fp32 (exact below 2^24); beyond, the int32 reference runs."""
    KH, KW = K
    C = 19
    rng = np.random.default_rng(7)
    x = np.where(rng.random((1, KH + 1, KW, C)) < 0.5, 0, 255).astype(np.uint8)
    w = np.where(rng.random((KH, KW, C)) < 0.5, -128, 127).astype(np.int8)
    x[..., 0] = 0
    w[..., 0] = -128  # channel 0: 0 - 255 times -128 on every tap, the largest sum
    packed = _core.pack_depthwise_s8(w)
    ones = np.ones(C, np.float32)
    got = _core.dwconv_u8(packed, x, 255, (1, 1), (0, 0), (1, 1), ones, None, -INF, INF, 1.0, 0, "float32")
    want = ref_conv(x, w, (1, 1), (0, 0), (1, 1), 255)
    assert want[0, 0, 0, 0] == KH * KW * 255 * 128
    np.testing.assert_array_equal(got.astype(np.int64), want)


# ----------------------------------------------------------------------------- fp32
@pytest.mark.parametrize("N,H,W,C,K,stride,padding,dilation", GEOMETRIES)
def test_f32_matches_reference(isa, rng, N, H, W, C, K, stride, padding, dilation):
    x = rng.normal(0, 1, (N, H, W, C)).astype(np.float32)
    w = rng.normal(0, 1, (*K, C)).astype(np.float32)
    bias = rng.normal(0, 1, C).astype(np.float32)
    packed = _core.pack_depthwise_f32(w)
    acc = ref_conv(x, w, stride, padding, dilation, dtype=np.float64)
    want = acc + bias
    got = _core.dwconv_f32(packed, x, stride, padding, dilation, bias, -INF, INF)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    got = _core.dwconv_f32(packed, x, stride, padding, dilation, None, 0.0, 6.0)
    np.testing.assert_allclose(got, np.clip(acc, 0, 6), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- strides, threads
def test_channel_slices_in_and_out(isa, rng):
    """Input read from and output written into channel slices of bigger NHWC tensors."""
    N, H, W, C = 2, 9, 10, 17
    x, w, zp, mult, bias = int8_case(rng, N, H, W, C, (3, 3))
    big = rng.integers(0, 256, (N, H, W, C + 13), dtype=np.uint8)
    big[..., 5 : 5 + C] = x
    packed = _core.pack_depthwise_s8(w)
    want, near_tie = ref_requant(ref_epilogue(ref_conv(x, w, (2, 2), (1, 1), (1, 1), zp), mult, bias, -INF, INF), 0.05, 3)
    OH, OW = want.shape[1:3]
    out = np.full((N, OH, OW, C + 9), 77, np.uint8)
    res = _core.dwconv_u8(packed, big[..., 5 : 5 + C], zp, (2, 2), (1, 1), (1, 1), mult, bias, -INF, INF, 0.05, 3,
                          "uint8", out=out[..., 4 : 4 + C])
    check_u8(out[..., 4 : 4 + C], want, near_tie)
    assert np.all(out[..., :4] == 77) and np.all(out[..., 4 + C :] == 77)  # nothing outside the slice
    assert res.shape == (N, OH, OW, C)

    xf = rng.normal(size=(N, H, W, C + 3)).astype(np.float32)
    wf = rng.normal(size=(3, 3, C)).astype(np.float32)
    outf = np.zeros((N, H, W, 2 * C), np.float32)
    _core.dwconv_f32(_core.pack_depthwise_f32(wf), xf[..., 3:], (1, 1), (1, 1), (1, 1), None, -INF, INF,
                     out=outf[..., C:])
    np.testing.assert_allclose(outf[..., C:], ref_conv(xf[..., 3:], wf, (1, 1), (1, 1), (1, 1), dtype=np.float64),
                               rtol=1e-5, atol=1e-5)
    assert np.all(outf[..., :C] == 0)


@pytest.mark.parametrize("threads", [1, 2])
def test_threads(isa, rng, threads):
    before = mixq.get_num_threads()
    mixq.set_num_threads(threads)
    try:
        for N, H, W, C, stride in [(2, 30, 31, 96, (1, 1)), (1, 28, 28, 144, (2, 2)), (1, 7, 7, 275, (1, 1))]:
            x, w, zp, mult, bias = int8_case(rng, N, H, W, C, (3, 3))
            packed = _core.pack_depthwise_s8(w)
            want_f = ref_epilogue(ref_conv(x, w, stride, (1, 1), (1, 1), zp), mult, bias, 0.0, 6.0)
            want, near_tie = ref_requant(want_f, 0.025, 0)
            got = _core.dwconv_u8(packed, x, zp, stride, (1, 1), (1, 1), mult, bias, 0.0, 6.0, 0.025, 0, "uint8")
            check_u8(got, want, near_tie)
            xf = x.astype(np.float32) / 255
            wf = w.astype(np.float32) / 128
            got = _core.dwconv_f32(_core.pack_depthwise_f32(wf), xf, stride, (1, 1), (1, 1), bias, -INF, INF)
            want = ref_conv(xf, wf, stride, (1, 1), (1, 1), dtype=np.float64) + bias
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    finally:
        mixq.set_num_threads(before)


def test_kernel_names(isa, rng):
    x, w, zp, mult, _ = int8_case(rng, 1, 4, 4, 8, (3, 3))
    _core.dwconv_u8(_core.pack_depthwise_s8(w), x, zp, (1, 1), (1, 1), (1, 1), mult, None, -INF, INF, 1.0, 0, "uint8")
    name = mixq.last_kernel()
    assert name.startswith("u8s8_dwconv")
    # Every x86 level from avx2 up has depthwise kernels: only ref runs the scalar ones.
    assert name.endswith("__ref") == (isa == "ref")
    assert name.endswith("__avx2") == (isa == "avx2")
    # int8 3x3 runs on vpdpbusd where VNNI is active; other kernel sizes stay on the fp32-FMA path.
    assert name.endswith("__avx512vnni") == (isa == "avx512vnni")
    x5, w5, zp5, mult5, _ = int8_case(rng, 1, 6, 6, 8, (5, 5))
    _core.dwconv_u8(_core.pack_depthwise_s8(w5), x5, zp5, (1, 1), (2, 2), (1, 1), mult5, None, -INF, INF, 1.0, 0, "uint8")
    assert not mixq.last_kernel().endswith("__avx512vnni")
    _core.dwconv_f32(_core.pack_depthwise_f32(w5.astype(np.float32)), x5.astype(np.float32), (1, 1), (2, 2), (1, 1),
                     None, -INF, INF)
    assert mixq.last_kernel().startswith("f32_dwconv") and mixq.last_kernel().endswith("__ref") == (isa == "ref")
    # Beyond kDwMaxExactTaps (256) the fp32 accumulation of the SIMD kernels is not exact: the reference runs.
    x17, w17, zp17, mult17, _ = int8_case(rng, 1, 17, 17, 8, (17, 17))
    _core.dwconv_u8(_core.pack_depthwise_s8(w17), x17, zp17, (1, 1), (0, 0), (1, 1), mult17, None, -INF, INF, 1.0, 0,
                    "uint8")
    assert mixq.last_kernel() == "u8s8_dwconv__ref"


TIE_GEOMETRIES = [g for g in GEOMETRIES if g[0] * g[1] * g[2] >= 60]


@pytest.mark.parametrize("N,H,W,C,K,stride,padding,dilation", TIE_GEOMETRIES)
def test_int8_same_bits_as_reference_path(isa, rng, N, H, W, C, K, stride, padding, dilation):
    """Through the runtime (dispatch included), each path's int8 output equals the scalar path's bit
    for bit: float epilogues, and u8 codes where a dyadic mult and half-integer biases put many
    values on exact rounding ties (round half to even)."""
    x, w, zp, mult, bias = int8_case(rng, N, H, W, C, K)
    packed = _core.pack_depthwise_s8(w)
    geo = (stride, padding, dilation)
    ties_mult = np.full(C, 1 / 256, np.float32)
    ties_bias = rng.integers(-6, 7, C).astype(np.float32) / 2
    calls = [
        (zp, *geo, mult, bias, -2.0, 3.0, 1.0, 0, "float32"),
        (zp, *geo, mult, bias, 0.0, 6.0, 0.02, 3, "uint8"),
        (zp, *geo, ties_mult, ties_bias, -INF, INF, 1.0, 128, "uint8"),
        (zp, *geo, ties_mult, None, -30.0, 40.0, 0.5, 100, "uint8"),
    ]
    got = [_core.dwconv_u8(packed, x, *args) for args in calls]
    mixq.set_isa("ref")
    try:
        want = [_core.dwconv_u8(packed, x, *args) for args in calls]
    finally:
        mixq.set_isa(isa)
    for g, wnt in zip(got, want):
        np.testing.assert_array_equal(g, wnt)


@pytest.mark.parametrize("K,stride", [((3, 3), (1, 1)), ((3, 3), (2, 2)), ((1, 1), (1, 1)), ((2, 3), (1, 2))])
def test_int8_rounds_ties_to_even(isa, K, stride):
    """acc = x - zp on the one nonzero tap and y = acc / 2: every odd acc is a tie, which rounds to
    the even neighbour (-1.5 -> -2, -0.5 -> 0, 0.5 -> 0, 1.5 -> 2, 2.5 -> 2)."""
    KH, KW = K
    C, zp = 21, 131
    x = np.arange(1 * 9 * 30 * C).reshape(1, 9, 30, C).astype(np.uint8)  # every byte, every channel position
    w = np.zeros((KH, KW, C), np.int8)
    w[KH // 2, KW // 2] = 1
    got = _core.dwconv_u8(_core.pack_depthwise_s8(w), x, zp, stride, (KH // 2, KW // 2), (1, 1),
                          np.full(C, 0.5, np.float32), None, -INF, INF, 1.0, 128, "uint8")
    acc = ref_conv(x, w, stride, (KH // 2, KW // 2), (1, 1), zp)
    assert np.any(acc % 4 == 1) and np.any(acc % 4 == 3)  # ties of both parities
    np.testing.assert_array_equal(got, np.clip(np.rint(acc / 2) + 128, 0, 255).astype(np.uint8))


# ----------------------------------------------------------------------------- errors
def test_weights_object():
    w = _core.pack_depthwise_s8(np.zeros((3, 5, 7), np.int8))
    assert (w.KH, w.KW, w.C, w.is_int8) == (3, 5, 7, True)
    wf = _core.pack_depthwise_f32(np.zeros((1, 1, 33), np.float32))
    assert (wf.KH, wf.KW, wf.C, wf.is_int8) == (1, 1, 33, False)
    assert wf.nbytes >= 48 * 4


def test_errors():
    w8 = _core.pack_depthwise_s8(np.ones((3, 3, 8), np.int8))
    wf = _core.pack_depthwise_f32(np.ones((3, 3, 8), np.float32))
    x = np.zeros((1, 5, 5, 8), np.uint8)
    xf = np.zeros((1, 5, 5, 8), np.float32)
    m = np.ones(8, np.float32)
    args = ((1, 1), (1, 1), (1, 1))
    with pytest.raises(ValueError, match="channels"):
        _core.dwconv_u8(w8, np.zeros((1, 5, 5, 9), np.uint8), 0, *args, np.ones(9, np.float32), None, 0, 1, 1.0, 0, "uint8")
    with pytest.raises(ValueError, match="per channel"):
        _core.dwconv_u8(w8, x, 0, *args, np.ones(7, np.float32), None, 0, 1, 1.0, 0, "uint8")
    with pytest.raises(ValueError, match="per channel"):
        _core.dwconv_f32(wf, xf, *args, np.ones(3, np.float32), 0, 1)
    with pytest.raises(ValueError, match="out_dtype"):
        _core.dwconv_u8(w8, x, 0, *args, m, None, 0, 1, 1.0, 0, "int8")
    with pytest.raises(ValueError):
        _core.dwconv_u8(wf, x, 0, *args, m, None, 0, 1, 1.0, 0, "uint8")  # fp32 weights
    with pytest.raises(ValueError):
        _core.dwconv_f32(w8, xf, *args, None, 0, 1)  # int8 weights
    with pytest.raises(ValueError, match="larger than the padded input"):
        _core.dwconv_f32(wf, np.zeros((1, 2, 5, 8), np.float32), (1, 1), (0, 0), (1, 1), None, 0, 1)
    with pytest.raises(ValueError):
        _core.dwconv_f32(wf, xf, (0, 1), (1, 1), (1, 1), None, 0, 1)
    with pytest.raises(ValueError):
        _core.dwconv_f32(wf, xf, (1, 1), (-1, 1), (1, 1), None, 0, 1)
    with pytest.raises(ValueError, match="out_scale"):
        _core.dwconv_u8(w8, x, 0, *args, m, None, 0, 1, 0.0, 0, "uint8")
    with pytest.raises(ValueError, match="NHWC"):
        _core.dwconv_f32(wf, np.zeros((1, 5, 8, 5), np.float32).transpose(0, 1, 3, 2), *args, None, 0, 1)
    with pytest.raises(ValueError, match="out is"):
        _core.dwconv_f32(wf, xf, *args, None, 0, 1, out=np.zeros((1, 5, 5, 9), np.float32))
    with pytest.raises(ValueError, match="out must be"):
        _core.dwconv_f32(wf, xf, *args, None, 0, 1, out=np.zeros((1, 5, 5, 8), np.float64))
    with pytest.raises(ValueError, match="lo <= hi"):
        _core.dwconv_f32(wf, xf, *args, None, 2.0, 1.0)
    with pytest.raises(ValueError):
        _core.pack_depthwise_s8(np.zeros((0, 3, 8), np.int8))


def test_empty_batch(isa):
    wf = _core.pack_depthwise_f32(np.ones((3, 3, 8), np.float32))
    assert _core.dwconv_f32(wf, np.zeros((0, 5, 5, 8), np.float32), (2, 2), (1, 1), (1, 1), None, 0, 1).shape == (0, 3, 3, 8)
    w8 = _core.pack_depthwise_s8(np.ones((3, 3, 8), np.int8))
    out = _core.dwconv_u8(w8, np.zeros((0, 5, 5, 8), np.uint8), 0, (1, 1), (1, 1), (1, 1), np.ones(8, np.float32),
                          None, 0, 1, 1.0, 0, "uint8")
    assert out.shape == (0, 5, 5, 8) and out.dtype == np.uint8
