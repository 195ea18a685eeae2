"""Maintainer script: rebuild the shipped 2 000-image Fashion-MNIST test subset.

    python -m mixq.data._make_subset [--root DIR]

Picks 200 test images per class with a fixed seed (0), keeps them in test-set
order, writes fashion_mnist_test_subset.npz next to this file and prints its
sha256, which must then be pasted into ``SUBSET_SHA256`` in fmnist.py.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import zipfile

import numpy as np

from .fmnist import SUBSET_PATH, SUBSET_PER_CLASS, fashion_mnist


def build(root=None) -> bytes:
    images, labels = fashion_mnist("test", root)
    rng = np.random.default_rng(0)
    picks = [np.sort(rng.choice(np.flatnonzero(labels == c), SUBSET_PER_CLASS, replace=False)) for c in range(10)]
    idx = np.sort(np.concatenate(picks))
    # Write the zip ourselves with a fixed timestamp so the bytes (and sha256)
    # are reproducible across runs.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, arr in (("images", images[idx]), ("labels", labels[idx].astype(np.uint8)), ("indices", idx.astype(np.int32))):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, member.getvalue(), compresslevel=9)
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=None)
    args = ap.parse_args()
    data = build(args.root)
    SUBSET_PATH.write_bytes(data)
    print(f"wrote {SUBSET_PATH} ({len(data)} bytes) sha256={hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
