"""The source material's synthetic data: a noisy line, a linearly separable binary task, and
random token sequences (noise labels as in the source, or labels that depend on the tokens)."""

from __future__ import annotations

import numpy as np

from dlx.data.bundle import Spec

PAD, UNK = 0, 1  # token ids every sequence dataset reserves; real tokens start at 2


def linear(cfg) -> tuple[np.ndarray, np.ndarray, Spec]:
    """y = weight * x + bias + N(0, noise^2), x uniform in [x_min, x_max): 100x1 in the source."""
    rng = np.random.default_rng(cfg.seed)
    x = cfg.x_min + (cfg.x_max - cfg.x_min) * rng.random((cfg.n_samples, 1))
    y = cfg.weight * x[:, 0] + cfg.bias + cfg.noise * rng.standard_normal(cfg.n_samples)
    return x, y, Spec("regression", (1,), 1)


def logistic(cfg) -> tuple[np.ndarray, np.ndarray, Spec]:
    """Points uniform in the unit square, label 1 where x0 + x1 > 1: 100x2 in the source."""
    rng = np.random.default_rng(cfg.seed)
    x = rng.random((cfg.n_samples, 2))
    y = (x[:, 0] + x[:, 1] > 1).astype(np.int64)
    return x, y, Spec("binary", (2,), 1, ("0", "1"))


def sequence(cfg) -> tuple[np.ndarray, np.ndarray, Spec]:
    """Random token sequences, right-padded with 0: 100x10 ids in [2, vocab_size) in the source.

    labels=noise: coin flips, as in the source (nothing to learn: accuracy stays near 50%).
    labels=signal: 1 where the sequence holds one of the `triggers` lowest token ids 2..; the
    trigger count is chosen so that about half of the full-length sequences are positive.
    Lengths are uniform in [min_length, length] (min_length 0: every sequence is full length).
    """
    rng = np.random.default_rng(cfg.seed)
    n, steps, tokens = cfg.n_samples, cfg.length, cfg.vocab_size - 2
    x = rng.integers(2, cfg.vocab_size, size=(n, steps))
    lengths = rng.integers(cfg.min_length or steps, steps + 1, size=n)
    x[np.arange(steps)[None, :] >= lengths[:, None]] = PAD
    if cfg.labels == "noise":
        y = rng.integers(0, 2, size=n)
    else:  # P(no trigger in `steps` draws) = (1 - k/tokens)^steps = 1/2
        k = max(1, round(tokens * (1 - 0.5 ** (1 / steps))))
        y = ((x >= 2) & (x < 2 + k)).any(axis=1).astype(np.int64)
    return x, y.astype(np.int64), Spec("binary", (steps,), 1, ("0", "1"), vocab_size=cfg.vocab_size)
