"""mixq.data: IDX parsing, Fashion-MNIST lookup, the shipped subset, clear errors."""

import gzip
import hashlib
import subprocess
import sys
import warnings

import numpy as np
import pytest

from mixq import data
from mixq.data import fmnist as fm_module

FULL = data.find_fashion_mnist("test") is not None
needs_full = pytest.mark.skipif(not FULL, reason="full Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")


@pytest.fixture
def no_system_data(monkeypatch, tmp_path):
    """Hide any installed dataset: empty system dir, no $MIXQ_DATA."""
    monkeypatch.setattr(fm_module, "SYSTEM_DIR", tmp_path / "no-system-data")
    monkeypatch.delenv("MIXQ_DATA", raising=False)


def _fake_split(directory, split="test", n=None, gz=True, label_value=3):
    """Write a tiny-but-valid Fashion-MNIST split (all-zero images) into ``directory``."""
    n = n if n is not None else {"test": 10000, "train": 60000}[split]
    prefix = {"test": "t10k", "train": "train"}[split]
    suffix = ".gz" if gz else ""
    directory.mkdir(parents=True, exist_ok=True)
    data.write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", np.zeros((n, 28, 28), np.uint8))
    data.write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", np.full(n, label_value, np.uint8))
    return directory


# --------------------------------------------------------------------------- IDX format


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, suffix, dtype):
    arr = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    path = data.write_idx(tmp_path / f"a.idx{suffix}", arr)
    out = data.read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_idx_gzip_detected_by_content(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = data.write_idx(tmp_path / "no-suffix", arr, compress=True)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(data.read_idx(path), arr)


def _good_idx_bytes():
    arr = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    return b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + arr.tobytes()


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (lambda b: b"\x12\x34" + b[2:], "bad magic"),
        (lambda b: b[:2] + b"\x42" + b[3:], "bad magic"),  # unknown type code
        (lambda b: b[:2], "too short"),
        (lambda b: b[:10], "truncated header"),
        (lambda b: b[:-100], "truncated payload"),
        (lambda b: b + b"\x00" * 7, "trailing bytes"),
        (lambda b: gzip.compress(b)[:-200], "corrupt gzip"),
    ],
    ids=["magic", "typecode", "tiny", "header", "payload", "trailing", "gzip"],
)
def test_corrupt_idx_raises_value_error_with_path(tmp_path, corrupt, match):
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(corrupt(_good_idx_bytes()))
    with pytest.raises(data.IDXFormatError, match=match) as exc:
        data.read_idx(path)
    assert isinstance(exc.value, ValueError)
    assert exc.value.path == str(path)
    assert str(path) in str(exc.value)


def test_split_with_mismatched_counts(tmp_path, no_system_data):
    d = _fake_split(tmp_path / "d")
    data.write_idx(d / "t10k-labels-idx1-ubyte.gz", np.zeros(9999, np.uint8))
    with pytest.raises(data.IDXFormatError, match="9999 labels but 10000 images") as exc:
        data.fashion_mnist("test", root=d)
    assert "t10k-labels" in exc.value.path


def test_split_with_wrong_total_count(tmp_path, no_system_data):
    d = _fake_split(tmp_path / "d", n=500)
    with pytest.raises(data.IDXFormatError, match="must have 10000 images, found 500"):
        data.fashion_mnist("test", root=d)


def test_split_with_bad_image_shape_or_labels(tmp_path, no_system_data):
    d = _fake_split(tmp_path / "d", label_value=11)
    with pytest.raises(data.IDXFormatError, match="label 11 out of range"):
        data.fashion_mnist("test", root=d)
    data.write_idx(d / "t10k-images-idx3-ubyte.gz", np.zeros((10000, 32, 32), np.uint8))
    with pytest.raises(data.IDXFormatError, match=r"\[N, 28, 28\]"):
        data.fashion_mnist("test", root=d)


def test_corrupt_file_in_dataset_dir_is_reported_not_skipped(tmp_path, no_system_data):
    d = _fake_split(tmp_path / "d")
    (d / "t10k-images-idx3-ubyte.gz").write_bytes(b"garbage!")
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz"):
        data.fashion_mnist("test", root=d)


# --------------------------------------------------------------------------- lookup


def test_missing_full_set_says_how_to_install(tmp_path, no_system_data):
    with pytest.raises(data.DatasetNotFoundError, match="apt-get install dataset-fashion-mnist") as exc:
        data.fashion_mnist("train", root=tmp_path / "empty")
    assert isinstance(exc.value, FileNotFoundError)
    assert str(tmp_path / "empty") in str(exc.value)
    with pytest.raises(data.DatasetNotFoundError):
        data.fashion_mnist("test")


def test_missing_test_set_falls_back_to_subset_only_when_allowed(no_system_data):
    with pytest.warns(UserWarning, match="shipped 2 000-image subset"):
        x, y = data.fashion_mnist("test", allow_subset=True)
    assert x.shape == (2000, 28, 28)
    with pytest.raises(data.DatasetNotFoundError):
        data.fashion_mnist("train", allow_subset=True)


def test_lookup_order_root_then_env_then_system(tmp_path, monkeypatch):
    system = _fake_split(tmp_path / "system", label_value=1)
    env = _fake_split(tmp_path / "env", label_value=2, gz=False)
    root = _fake_split(tmp_path / "root", label_value=3)
    monkeypatch.setattr(fm_module, "SYSTEM_DIR", system)
    monkeypatch.setenv("MIXQ_DATA", str(env))
    assert data.fashion_mnist("test", root=root)[1][0] == 3
    assert data.fashion_mnist("test")[1][0] == 2  # raw (uncompressed) files work too
    monkeypatch.delenv("MIXQ_DATA")
    x, y = data.fashion_mnist("test")
    assert y[0] == 1 and y.dtype == np.int64 and x.dtype == np.uint8


def test_unknown_split():
    with pytest.raises(ValueError, match="unknown split"):
        data.fashion_mnist("validation")


# --------------------------------------------------------------------------- shipped subset


def test_shipped_subset_checksum_and_content():
    digest = hashlib.sha256(data.SUBSET_PATH.read_bytes()).hexdigest()
    assert digest == data.SUBSET_SHA256
    assert data.SUBSET_PATH.stat().st_size < 1_500_000
    x, y = data.fashion_mnist("test-subset")
    assert x.shape == (2000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (2000,) and y.dtype == np.int64
    assert np.bincount(y, minlength=10).tolist() == [200] * 10
    assert 0.2 < x.mean() / 255 < 0.4


def test_shipped_subset_checksum_is_verified(tmp_path, monkeypatch):
    bad = tmp_path / "subset.npz"
    raw = bytearray(data.SUBSET_PATH.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad.write_bytes(bytes(raw))
    monkeypatch.setattr(fm_module, "SUBSET_PATH", bad)
    with pytest.raises(data.IDXFormatError, match="sha256 mismatch") as exc:
        data.fashion_mnist("test-subset")
    assert exc.value.path == str(bad)


@needs_full
def test_full_test_set_and_subset_agree():
    x, y = data.fashion_mnist("test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert y.dtype == np.int64 and y.min() == 0 and y.max() == 9
    assert np.bincount(y).tolist() == [1000] * 10
    with np.load(data.SUBSET_PATH) as z:
        idx = z["indices"]
    sx, sy = data.fashion_mnist("test-subset")
    np.testing.assert_array_equal(x[idx], sx)
    np.testing.assert_array_equal(y[idx], sy)


@needs_full
def test_full_train_set():
    x, y = data.fashion_mnist("train")
    assert x.shape == (60000, 28, 28) and y.shape == (60000,)
    assert np.bincount(y).tolist() == [6000] * 10
    assert abs(x.mean() / 255 - data.MEAN) < 1e-3 and abs((x / 255).std() - data.STD) < 1e-3


# --------------------------------------------------------------------------- preprocessing / loader


def test_preprocess_and_augment():
    x, _ = data.fashion_mnist("test-subset")
    p = data.preprocess(x[:8])
    assert p.shape == (8, 1, 28, 28) and p.dtype == np.float32
    np.testing.assert_allclose(p[0, 0], (x[0] / 255 - data.MEAN) / data.STD, rtol=1e-5, atol=1e-6)

    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(data.augment(x[:8], rng, pad=0, flip=False), x[:8])
    a = data.augment(x[:64], np.random.default_rng(1))
    b = data.augment(x[:64], np.random.default_rng(1))
    assert a.shape == (64, 28, 28) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, x[:64])
    # every augmented image is a shifted (and maybe mirrored) copy: same multiset of
    # non-border pixels is not guaranteed, but the total ink can only shrink (cropping)
    assert (a.reshape(64, -1).sum(1) <= x[:64].reshape(64, -1).sum(1)).all()


def test_parsing_does_not_import_torch():
    code = (
        "import sys; import mixq; pre = 'torch' in sys.modules; "
        "import mixq.data as d; d.fashion_mnist('test-subset'); "
        "assert pre or 'torch' not in sys.modules, 'mixq.data imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_loader_batches_are_seeded():
    torch = pytest.importorskip("torch")
    sub = data.fashion_mnist("test-subset")
    it = data.loader("train", 128, data=sub, seed=7, drop_last=True)
    assert len(it) == 2000 // 128
    (x1, y1), = [next(iter(it))]
    assert x1.shape == (128, 1, 28, 28) and x1.dtype == torch.float32 and y1.dtype == torch.int64
    x2, y2 = next(iter(data.loader("train", 128, data=sub, seed=7)))
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    # evaluation order: unshuffled, unaugmented, last partial batch kept
    batches = list(data.loader("test-subset", 300))
    assert [len(b[1]) for b in batches] == [300] * 6 + [200]
    np.testing.assert_array_equal(torch.cat([b[1] for b in batches]).numpy(), sub[1])
    cl = next(iter(data.loader("test-subset", 16, channels_last=True)))[0]
    assert cl.is_contiguous(memory_format=torch.channels_last)
