"""Fashion-MNIST: locate, parse and validate the IDX files; a shipped test subset.

Parsing needs numpy only.  ``loader`` (for training and calibration) imports
torch lazily.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

from .idx import IDXFormatError, read_idx

__all__ = [
    "CLASSES",
    "MEAN",
    "STD",
    "SPLITS",
    "SYSTEM_DIR",
    "SUBSET_PATH",
    "SUBSET_SHA256",
    "DatasetNotFoundError",
    "fashion_mnist",
    "find_fashion_mnist",
    "preprocess",
    "augment",
    "loader",
]

CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# Mean / std of the 60 000 training images (pixel values scaled to [0, 1]).
MEAN = 0.2860
STD = 0.3530

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "MIXQ_DATA"
SUBSET_PATH = Path(__file__).with_name("fashion_mnist_test_subset.npz")
# sha256 of the shipped subset file, checked on every load.
SUBSET_SHA256 = "17becbc34058dcd6a36ac89404a79cc5bf60fdcfafeeb30490ae91fdede36b92"
SUBSET_PER_CLASS = 200

SPLITS = ("train", "test", "test-subset")
_PREFIXES = {"train": ("train",), "test": ("t10k", "test")}
_EXPECTED_COUNT = {"train": 60000, "test": 10000}
_INSTALL_HINT = (
    "Install the full dataset with `apt-get install dataset-fashion-mnist` "
    f"(files go to {SYSTEM_DIR}), or point root= / ${ENV_VAR} at a directory holding "
    "the four IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
    "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz])."
)


class DatasetNotFoundError(FileNotFoundError):
    """The requested dataset split is not installed in any searched location."""


def _split_files(directory: Path, split: str) -> tuple[Path, Path] | None:
    """Return (images, labels) for ``split`` in ``directory``, or None if absent."""
    for prefix in _PREFIXES[split]:
        for suffix in (".gz", ""):
            img = directory / f"{prefix}-images-idx3-ubyte{suffix}"
            lab = directory / f"{prefix}-labels-idx1-ubyte{suffix}"
            if img.is_file() and lab.is_file():
                return img, lab
    return None


def _search_dirs(root: str | os.PathLike | None) -> list[Path]:
    dirs = []
    if root is not None:
        dirs.append(Path(root))
    env = os.environ.get(ENV_VAR)
    if env:
        dirs.append(Path(env))
    dirs.append(SYSTEM_DIR)
    return dirs


def find_fashion_mnist(split: str = "test", root: str | os.PathLike | None = None) -> tuple[Path, Path] | None:
    """Locate the full ``split`` ("train" or "test"): (images, labels) paths or None.

    Search order: ``root``, ``$MIXQ_DATA``, ``/usr/share/datasets/fashion-mnist``.
    """
    if split not in _PREFIXES:
        raise ValueError(f"split must be 'train' or 'test' here, got {split!r}")
    for d in _search_dirs(root):
        found = _split_files(d, split)
        if found is not None:
            return found
    return None


def _load_pair(img_path: Path, lab_path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(img_path)
    labels = read_idx(lab_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise IDXFormatError(img_path, f"expected uint8 images of shape [N, 28, 28], got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise IDXFormatError(lab_path, f"expected a 1-D uint8 label vector, got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise IDXFormatError(lab_path, f"{len(labels)} labels but {len(images)} images in {img_path}")
    expected = _EXPECTED_COUNT[split]
    if len(images) != expected:
        raise IDXFormatError(img_path, f"Fashion-MNIST {split} split must have {expected} images, found {len(images)}")
    if labels.size and labels.max() > 9:
        raise IDXFormatError(lab_path, f"label {int(labels.max())} out of range 0..9")
    return images, labels.astype(np.int64)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _load_subset() -> tuple[np.ndarray, np.ndarray]:
    if not SUBSET_PATH.is_file():
        raise DatasetNotFoundError(f"shipped Fashion-MNIST subset missing: {SUBSET_PATH} (broken install?)")
    digest = _sha256(SUBSET_PATH)
    if digest != SUBSET_SHA256:
        raise IDXFormatError(SUBSET_PATH, f"sha256 mismatch: expected {SUBSET_SHA256}, got {digest}")
    with np.load(SUBSET_PATH) as z:
        images, labels = z["images"], z["labels"]
    if images.shape != (10 * SUBSET_PER_CLASS, 28, 28) or images.dtype != np.uint8:
        raise IDXFormatError(SUBSET_PATH, f"unexpected images {images.dtype} {images.shape}")
    return images.copy(), labels.astype(np.int64)


def fashion_mnist(
    split: str = "test",
    root: str | os.PathLike | None = None,
    *,
    allow_subset: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Load Fashion-MNIST as ``(images uint8 [N, 28, 28], labels int64 [N])``.

    ``split``: "train" (60 000), "test" (10 000) or "test-subset" (2 000 test
    images shipped inside the package, 200 per class, sha256-verified).

    The full splits are looked up in ``root``, ``$MIXQ_DATA``, then
    ``/usr/share/datasets/fashion-mnist``.  If "test" is not found and
    ``allow_subset`` is true, the shipped subset is returned (with a warning);
    otherwise :class:`DatasetNotFoundError` says how to install the data.
    Malformed files raise :class:`IDXFormatError` (a ``ValueError``) naming the file.
    """
    if split == "test-subset":
        return _load_subset()
    if split not in _PREFIXES:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    found = find_fashion_mnist(split, root)
    if found is not None:
        return _load_pair(*found, split)
    if split == "test" and allow_subset:
        warnings.warn(
            "full Fashion-MNIST test set not found; using the shipped 2 000-image subset. " + _INSTALL_HINT,
            stacklevel=2,
        )
        return _load_subset()
    searched = ", ".join(str(d) for d in _search_dirs(root))
    raise DatasetNotFoundError(f"Fashion-MNIST {split!r} split not found (searched: {searched}). {_INSTALL_HINT}")


# --------------------------------------------------------------------------- preprocessing


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 [N, 28, 28] -> normalized float32 [N, 1, 28, 28] (the models' input)."""
    x = np.asarray(images, dtype=np.float32)[:, None] / np.float32(255.0)
    return (x - np.float32(MEAN)) / np.float32(STD)


def augment(images: np.ndarray, rng: np.random.Generator, pad: int = 2, flip: bool = True) -> np.ndarray:
    """Random crop after zero padding by ``pad`` pixels, and random horizontal flip.

    Works on a uint8 batch [N, H, W] in one vectorized gather.
    """
    n, h, w = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))
    dy = rng.integers(0, 2 * pad + 1, size=n)
    dx = rng.integers(0, 2 * pad + 1, size=n)
    rows = dy[:, None] + np.arange(h)[None, :]
    cols = dx[:, None] + np.arange(w)[None, :]
    if flip:
        mirror = rng.random(n) < 0.5
        cols = np.where(mirror[:, None], cols[:, ::-1], cols)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


class _Loader:
    """Iterable over (x float32 [B,1,28,28], y int64 [B]) torch tensors."""

    def __init__(self, images, labels, batch_size, shuffle, augment_data, seed, drop_last, channels_last):
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.shuffle, self.augment_data = shuffle, augment_data
        self.drop_last, self.channels_last = drop_last, channels_last
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        import torch

        n = len(self.images)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            imgs = self.images[idx]
            if self.augment_data:
                imgs = augment(imgs, self.rng)
            x = torch.from_numpy(preprocess(imgs))
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, torch.from_numpy(self.labels[idx])


def loader(
    split: str = "train",
    batch_size: int = 256,
    *,
    shuffle: bool | None = None,
    augment: bool | None = None,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    allow_subset: bool = False,
    drop_last: bool = False,
    channels_last: bool = False,
    data: tuple[np.ndarray, np.ndarray] | None = None,
):
    """A torch batch iterator for training or calibration (torch imported lazily).

    Batches are normalized float32 tensors [B, 1, 28, 28] with int64 labels.
    Shuffling and augmentation (pad-2 random crop + horizontal flip) default to
    on for "train" and off otherwise; all randomness comes from ``seed``, so a
    given seed yields the same batches every run.  Pass ``data=(images, labels)``
    to iterate over arrays already loaded.
    """
    is_train = split == "train"
    images, labels = data if data is not None else fashion_mnist(split, root, allow_subset=allow_subset)
    return _Loader(
        images, labels, batch_size,
        shuffle=is_train if shuffle is None else shuffle,
        augment_data=is_train if augment is None else augment,
        seed=seed, drop_last=drop_last, channels_last=channels_last,
    )
