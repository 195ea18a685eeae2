"""Datasets for mixq: Fashion-MNIST (IDX parsing with numpy; torch only in ``loader``)."""

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

__all__ = [
    "CLASSES",
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
    "write_idx",
]
