"""The source material's synthetic data: a noisy line and a linearly separable binary task."""

from __future__ import annotations

import numpy as np

from dlx.data.bundle import Spec


def linear(cfg) -> tuple[np.ndarray, np.ndarray, Spec]:
    """y = weight * x + bias + N(0, noise^2), x uniform in [0, 1): 100x1 in the source."""
    rng = np.random.default_rng(cfg.seed)
    x = rng.random((cfg.n_samples, 1))
    y = cfg.weight * x[:, 0] + cfg.bias + cfg.noise * rng.standard_normal(cfg.n_samples)
    return x, y, Spec("regression", (1,), 1)


def logistic(cfg) -> tuple[np.ndarray, np.ndarray, Spec]:
    """Points uniform in the unit square, label 1 where x0 + x1 > 1: 100x2 in the source."""
    rng = np.random.default_rng(cfg.seed)
    x = rng.random((cfg.n_samples, 2))
    y = (x[:, 0] + x[:, 1] > 1).astype(np.int64)
    return x, y, Spec("binary", (2,), 1, ("0", "1"))
