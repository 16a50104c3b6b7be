"""Tabular and small bundled datasets."""

from __future__ import annotations

import numpy as np

from dlx.data.bundle import Spec


def digits(cfg) -> tuple[np.ndarray, np.ndarray, Spec]:
    """scikit-learn's bundled 8x8 digits as 1x8x8 images scaled to [0, 1] (pixel values 0..16)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None, :, :]
    return x, d.target.astype(np.int64), Spec("multiclass", (1, 8, 8), 10, tuple(map(str, range(10))))
