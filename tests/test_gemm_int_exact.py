"""int8 x int8 -> int32 results must equal the exact integer reference on every ISA path."""

import numpy as np
import pytest

import mixq
from reference import int_matmul_wrapped

# 1-10, 2^k +- 1, and the tile edges of every kernel (MR 4/6/12/14, NR 32, KR 4).
SMALL = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
EDGES = [11, 12, 13, 14, 15, 31, 32, 33, 63, 64, 65, 127, 129]
SHAPES = ([(m, n, k) for m in (1, 3, 10) for n in (1, 7, 32) for k in SMALL]
          + [(m, 33, 65) for m in EDGES] + [(13, n, 17) for n in EDGES] + [(12, 31, k) for k in EDGES]
          + [(1, 257, 1023), (2, 100, 64), (1, 129, 12), (145, 95, 300), (300, 70, 9)]
          + [(1, 65, 1028), (2, 97, 1036), (6, 40, 520)]  # decode kernels: k steps past a multiple of 4
          + [(16, 128, 4), (17, 129, 300), (33, 257, 1028)])  # int16-widened path without VNNI (M >= 16, N >= 128)


def _pack(rng, n, k, with_zp):
    w = rng.integers(-128, 128, (n, k), dtype=np.int8)
    zp = rng.integers(-128, 128, n).astype(np.int32) if with_zp else None
    return w, zp, mixq.pack_weights(w, bits=8, scale=1.0, zero_point=zp)


@pytest.mark.parametrize("m,n,k", SHAPES)
def test_u8s8_int32_exact(isa, rng, m, n, k):
    w, _, p = _pack(rng, n, k, with_zp=False)
    x = rng.integers(0, 256, (m, k), dtype=np.uint8)
    got = mixq.matmul(x, p, x_scale=1.0, x_zero_point=0, out_dtype=np.int32)
    assert got.dtype == np.int32 and got.shape == (m, n)
    np.testing.assert_array_equal(got, int_matmul_wrapped(x, w))
    assert mixq.last_kernel().endswith("__" + isa)  # the forced path really ran


@pytest.mark.parametrize("signed", [False, True], ids=["u8s8", "s8s8"])
@pytest.mark.parametrize("m,n,k", [(1, 40, 37), (7, 33, 64), (13, 65, 129), (29, 100, 259)])
def test_random_zero_points_exact(isa, rng, signed, m, n, k):
    w, w_zp, p = _pack(rng, n, k, with_zp=True)
    if signed:
        x = rng.integers(-128, 128, (m, k), dtype=np.int8)
        x_zp = int(rng.integers(-128, 128))
    else:
        x = rng.integers(0, 256, (m, k), dtype=np.uint8)
        x_zp = int(rng.integers(0, 256))
    got = mixq.matmul(x, p, x_scale=0.5, x_zero_point=x_zp, out_dtype=np.int32)
    np.testing.assert_array_equal(got, int_matmul_wrapped(x, w, x_zp, w_zp))


@pytest.mark.parametrize("k", [4096, 65536])
def test_long_k_extreme_values_exact(isa, k):
    """Extreme operands at K=65536: 255*128*K is within int32, and any wrap matches the reference."""
    m, n = 3, 33
    x = np.full((m, k), 255, dtype=np.uint8)
    x[1] = 0
    x[2, ::2] = 1
    w = np.full((n, k), -128, dtype=np.int8)
    w[::3] = 127
    p = mixq.pack_weights(w, bits=8, scale=1.0)
    got = mixq.matmul(x, p, x_scale=1.0, x_zero_point=0, out_dtype=np.int32)
    np.testing.assert_array_equal(got, int_matmul_wrapped(x, w))
    assert got[0, 1] == 255 * -128 * k
    # With zero points the true result leaves int32: every path wraps identically.
    zp = np.full(n, 127, dtype=np.int32)
    pz = mixq.pack_weights(w, bits=8, scale=1.0, zero_point=zp)
    got = mixq.matmul(x, pz, x_scale=1.0, x_zero_point=0, out_dtype=np.int32)
    np.testing.assert_array_equal(got, int_matmul_wrapped(x, w, 0, zp))


def test_paths_agree_and_threads_do_not_change_results(rng):
    w, _, p = _pack(rng, 300, 515, with_zp=True)
    x = rng.integers(0, 256, (77, 515), dtype=np.uint8)
    expect = int_matmul_wrapped(x, w, 3, p.zero_point)
    before = mixq.get_num_threads()
    try:
        for threads in (1, 2, 3):
            mixq.set_num_threads(threads)
            got = mixq.matmul(x, p, x_scale=1.0, x_zero_point=3, out_dtype=np.int32)
            np.testing.assert_array_equal(got, expect)
    finally:
        mixq.set_num_threads(before)


def test_concurrent_python_threads(rng):
    """Calls from several Python threads at once (the pool is busy for all but one) stay exact."""
    from concurrent.futures import ThreadPoolExecutor

    w, _, p = _pack(rng, 96, 200, with_zp=False)
    xs = [rng.integers(0, 256, (50, 200), dtype=np.uint8) for _ in range(8)]
    with ThreadPoolExecutor(4) as ex:
        outs = list(ex.map(lambda x: mixq.matmul(x, p, x_scale=1.0, x_zero_point=0, out_dtype=np.int32), xs))
    for x, got in zip(xs, outs):
        np.testing.assert_array_equal(got, int_matmul_wrapped(x, w))


@pytest.mark.parametrize("clamp", [None, "relu", (-2.0, 3.0)])
def test_requantized_u8_codes_independent_of_column_position(isa, rng, clamp):
    # A column's u8 code must not depend on where it falls in a tile: the AVX-512 epilogue writes
    # whole 64-column lines of a row one way and tail columns another. Rotating the weight rows by
    # 32 moves columns between the two; every code must move with them unchanged.
    n, k, m = 96, 72, 45
    w = rng.integers(-127, 128, (n, k), dtype=np.int8)
    scale = rng.uniform(0.002, 0.02, n).astype(np.float32)
    bias = rng.normal(0, 2, n).astype(np.float32)
    x = rng.integers(0, 256, (m, k), dtype=np.uint8)
    x[0] = 255  # extreme rows: codes saturate at both ends
    x[1] = 0
    out = {}
    threads = mixq.get_num_threads()
    mixq.set_num_threads(1)  # one thread: tiles 64 columns wide (more threads split N finer)
    for shift in (0, 32):
        order = np.roll(np.arange(n), shift)
        p = mixq.pack_weights(w[order], bits=8, scale=scale[order])
        out[shift] = mixq.matmul(x, p, bias[order], clamp=clamp, x_scale=0.05, x_zero_point=17,
                                 out_dtype=np.uint8, out_scale=0.09, out_zero_point=100)
    mixq.set_num_threads(threads)
    np.testing.assert_array_equal(np.roll(out[0], 32, axis=1), out[32])
    assert len(np.unique(out[0])) > 50  # the codes span the range, not one clamped value
