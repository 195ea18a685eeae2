"""Packing: SIMD packers equal the reference byte for byte; PackedWeight round-trips and refuses
corrupt bytes."""

import numpy as np
import pytest

import mixq

HELPER_ISAS = [i for i in mixq.available_isas() if i != "avx512vnni"]  # vnni reuses the avx512 helpers


@pytest.mark.parametrize("rows", [1, 5, 14])
@pytest.mark.parametrize("k", [1, 3, 4, 5, 64, 67, 1001])
@pytest.mark.parametrize("signed", [False, True])
def test_activation_preparation_matches_reference(rng, rows, k, signed):
    """Activations the kernels cannot read in place (s8, or K not a multiple of 4) are converted:
    every ISA's converter equals the reference byte for byte, and so do the row sums."""
    x = rng.integers(0, 256, (rows, k), dtype=np.uint8)
    ref, ref_sums = mixq._core.prepare_a_u8("ref", x, signed)
    shifted = (x ^ 0x80) if signed else x
    expect = np.zeros((rows, -(-k // 4) * 4), np.uint8)
    expect[:, :k] = shifted
    np.testing.assert_array_equal(ref, expect)
    np.testing.assert_array_equal(ref_sums, shifted.astype(np.int64).sum(1))
    xf = rng.standard_normal((rows, k)).astype(np.float32)
    ref_bf16 = mixq._core.prepare_a_bf16("ref", xf)
    for isa in HELPER_ISAS:
        got, sums = mixq._core.prepare_a_u8(isa, x, signed)
        assert got.tobytes() == ref.tobytes(), isa
        np.testing.assert_array_equal(sums, ref_sums)
        assert mixq._core.prepare_a_bf16(isa, xf).tobytes() == ref_bf16.tobytes(), isa


def test_weight_packing_layout_and_nbytes(rng):
    n, k = 40, 10
    w = rng.integers(-128, 128, (n, k), dtype=np.int8)
    p = mixq.pack_weights(w, bits=8, scale=0.5)
    # 2 panels of 32 columns x ceil(10/4)=3 steps x 4 = 768 bytes of codes, + scales + column sums.
    assert p.nbytes == 2 * 3 * 32 * 4 + 4 * n + 4 * 64
    data = p._core.data().reshape(2, 3, 32, 4)
    full = np.zeros((64, 12), np.int8)
    full[:n, :k] = w
    np.testing.assert_array_equal(data.view(np.int8), full.reshape(2, 32, 3, 4).transpose(0, 2, 1, 3))
    np.testing.assert_array_equal(p.scale, np.full(n, 0.5, np.float32))
    assert p.zero_point is None and p.shape == (n, k) and p.bits == 8
    # fp32 weights cost 4 bytes each, bf16 2 (plus padding to 32 columns).
    wf = rng.standard_normal((64, 16)).astype(np.float32)
    assert mixq.pack_weights(wf, bits=32).nbytes == 64 * 16 * 4
    assert mixq.pack_weights(wf, bits=16).nbytes == 64 * 16 * 2


@pytest.mark.parametrize("bits", [8, 16, 32])
def test_bytes_round_trip(rng, bits):
    w = rng.standard_normal((37, 29)).astype(np.float32)
    p = mixq.pack_weights(w, bits=bits, symmetric=False) if bits == 8 else mixq.pack_weights(w, bits=bits)
    blob = p.to_bytes()
    q = mixq.PackedWeight.from_bytes(blob)
    assert (q.shape, q.bits, q.format, q.nbytes) == (p.shape, p.bits, p.format, p.nbytes)
    assert q.to_bytes() == blob
    x = rng.standard_normal((4, 29)).astype(np.float32)
    np.testing.assert_array_equal(mixq.matmul(x, q), mixq.matmul(x, p))


def _blob(rng):
    return mixq.pack_weights(rng.integers(-5, 5, (33, 20), dtype=np.int8), bits=8, scale=0.1).to_bytes()


def test_corrupt_bytes_are_refused(rng):
    blob = _blob(rng)
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x40
    with pytest.raises(ValueError, match="checksum"):
        mixq.PackedWeight.from_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="truncated"):
        mixq.PackedWeight.from_bytes(blob[:-7])
    with pytest.raises(ValueError, match="truncated"):
        mixq.PackedWeight.from_bytes(blob[:10])
    with pytest.raises(ValueError, match="magic"):
        mixq.PackedWeight.from_bytes(b"XXXX" + blob[4:])
    bad_version = bytearray(blob)
    bad_version[8] = 99
    with pytest.raises(ValueError, match="version"):
        mixq.PackedWeight.from_bytes(bytes(bad_version))
    # A header whose sizes disagree with the payload is refused before anything is read.
    bad_n = bytearray(blob)
    bad_n[20] ^= 0x01  # N
    with pytest.raises(ValueError):
        mixq.PackedWeight.from_bytes(bytes(bad_n))


def test_random_garbage_never_crashes(rng):
    blob = _blob(rng)
    for _ in range(200):
        mutated = bytearray(blob)
        for pos in rng.integers(0, len(blob), 3):
            mutated[pos] = int(rng.integers(0, 256))
        cut = int(rng.integers(0, len(blob) + 1))
        try:
            mixq.PackedWeight.from_bytes(bytes(mutated[:cut]))
        except ValueError:
            pass
