"""Datasets for mixq: Fashion-MNIST (IDX parsing with numpy; torch only in ``loader``) and
real English sentences from Debian's fortunes package (``sentences``)."""

from .fmnist import (
    CLASSES,
    MEAN,
    SPLITS,
    STD,
    SUBSET_PATH,
    SUBSET_SHA256,
    DatasetNotFoundError,
    augment,
    fashion_mnist,
    find_fashion_mnist,
    loader,
    preprocess,
)
from .idx import IDXFormatError, read_idx, write_idx
from .sentences import FORTUNES_DIR, sentences

__all__ = [
    "CLASSES",
    "FORTUNES_DIR",
    "MEAN",
    "STD",
    "SPLITS",
    "SUBSET_PATH",
    "SUBSET_SHA256",
    "DatasetNotFoundError",
    "IDXFormatError",
    "augment",
    "fashion_mnist",
    "find_fashion_mnist",
    "loader",
    "preprocess",
    "read_idx",
    "sentences",
    "write_idx",
]
