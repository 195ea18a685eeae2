"""The lookup-table 2-bit GEMV (u2lut): one-row W2A8 GEMMs through it equal the u2 kernel's output
bit for bit on every ISA level that has one (the dispatcher may swap one for the other), including
extreme operands (all activations 255 with all codes 3: the largest table entries and byte sums),
ragged N and K, and groups longer than the kernel's 64-unit k blocks."""
import numpy as np
import pytest

import mixq
from mixq import _core


@pytest.fixture
def lut_mode():
    yield _core.set_u2_lut
    _core.set_u2_lut("auto")


def _has_lut(isa):
    return isa != "ref" and any(k["kind"] == "u2lut" and k["runnable"] for k in mixq.kernel_list())


def _pack(rng, n, k, group, codes=None, zp=None):
    g = group or -(-k // 16) * 16
    n_groups = -(-k // g)
    if codes is None:
        codes = rng.integers(0, 4, (n, k), dtype=np.uint8)
    scale = mixq.quant.weights.round_bf16(rng.uniform(0.01, 0.1, (n, n_groups)))
    if zp is None:
        zp = rng.integers(0, 4, (n, n_groups)).astype(np.uint8)
    return mixq.pack_weights(codes, bits=2, group_size=group, scale=scale, zero_point=zp)


def _both(lut_mode, x, p, **kw):
    out = {}
    for mode in ("off", "on"):
        lut_mode(mode)
        out[mode] = (mixq.matmul(x, p, x_scale=0.03, x_zero_point=7, **kw), mixq.last_kernel())
    return out


@pytest.mark.parametrize("n,k,group", [(1, 32, 32), (33, 128, 32), (100, 96, 64), (64, 200, 64), (45, 257, 128),
                                       (300, 1000, 128), (257, 4096, 64), (70, 2100, None), (40, 20000, None),
                                       (31, 1500, None)])
def test_lut_equals_u2_bit_for_bit(isa, rng, lut_mode, n, k, group):
    if not _has_lut(isa):
        pytest.skip("no u2lut kernel at this level")
    p = _pack(rng, n, k, group)
    x = rng.integers(0, 256, (1, k), dtype=np.uint8)
    out = _both(lut_mode, x, p)
    assert "_lut_gemv_" in out["on"][1] and out["on"][1].endswith("__avx2" if isa == "avx2" else "__avx512")
    assert "_lut_" not in out["off"][1]
    assert out["on"][0].view(np.uint32).tobytes() == out["off"][0].view(np.uint32).tobytes()


@pytest.mark.parametrize("codes,zp", [(3, 0), (3, 3), (0, 3), (0, 0)], ids=["q3z0", "q3z3", "q0z3", "q0z0"])
@pytest.mark.parametrize("k,group", [(4096, 64), (2048, None), (1040, None), (100, 32)])
def test_lut_extremes(isa, rng, lut_mode, codes, zp, k, group):
    if not _has_lut(isa):
        pytest.skip("no u2lut kernel at this level")
    n = 96
    g = group or -(-k // 16) * 16
    p = _pack(rng, n, k, group, codes=np.full((n, k), codes, np.uint8),
              zp=np.full((n, -(-k // g)), zp, np.uint8))
    x = np.full((1, k), 255, np.uint8)
    out = _both(lut_mode, x, p)
    assert out["on"][0].view(np.uint32).tobytes() == out["off"][0].view(np.uint32).tobytes()
    # and the value itself: scale * 255 * (codes - zp) * K, less the activation zero point's term
    w = (codes - zp) * np.repeat(p.scale.astype(np.float64), g, axis=1)[:, :k]
    expect = 0.03 * ((255 - 7) * w.sum(axis=1))
    assert np.allclose(out["on"][0][0], expect, rtol=1e-5, atol=1e-4)


def test_lut_only_for_one_row(rng, lut_mode):
    p = _pack(rng, 64, 256, 64)
    lut_mode("on")
    mixq.matmul(rng.integers(0, 256, (2, 256), dtype=np.uint8), p, x_scale=0.03, x_zero_point=7)
    assert "_lut_" not in mixq.last_kernel()


def test_auto_follows_the_level_rule(rng, lut_mode):
    """Dispatched nowhere (it measured slower than the u2 kernel on every level, docs/design-notes.md):
    auto runs the u2 kernel."""
    p = _pack(rng, 64, 256, 64)
    lut_mode("auto")
    for isa in mixq.available_isas():
        before = mixq.cpu_info()["isa"]
        mixq.set_isa(isa)
        try:
            mixq.matmul(rng.integers(0, 256, (1, 256), dtype=np.uint8), p, x_scale=0.03, x_zero_point=7)
            assert "_lut_" not in mixq.last_kernel()
        finally:
            mixq.set_isa(before)


def test_bad_mode():
    with pytest.raises(ValueError):
        _core.set_u2_lut("sometimes")
