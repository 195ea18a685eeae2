"""Plain numpy references the kernels are checked against."""

import numpy as np


def int_matmul_wrapped(x, w, x_zp=0, w_zp=None):
    """(x - x_zp) @ (w - w_zp).T in exact integer arithmetic, wrapped to int32 like the core."""
    xi = x.astype(np.int64) - x_zp
    wi = w.astype(np.int64)
    if w_zp is not None:
        wi = wi - np.asarray(w_zp, dtype=np.int64)[:, None]
    return (xi @ wi.T).astype(np.int32)  # astype wraps mod 2^32


def quantize_rows_u8(x):
    """Per-row asymmetric uint8 quantization, the same float32 steps as the core."""
    x = x.astype(np.float32)
    lo = np.minimum(x.min(axis=1), np.float32(0))
    hi = np.maximum(x.max(axis=1), np.float32(0))
    scale = ((hi - lo) / np.float32(255)).astype(np.float32)
    scale = np.where(scale > 0, scale, np.float32(1)).astype(np.float32)
    inv = (np.float32(1) / scale).astype(np.float32)
    zp = np.clip(np.rint(-lo * inv), 0, 255).astype(np.float32)
    q = np.clip(np.rint(x * inv[:, None]) + zp[:, None], 0, 255).astype(np.uint8)
    return q, scale, zp.astype(np.int32)
