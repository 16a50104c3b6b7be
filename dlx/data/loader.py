"""config -> Bundle. Each dataset name maps to the function that reads it (one module per family)."""

from __future__ import annotations

from dlx.data import synthetic, tabular
from dlx.data.bundle import Bundle, split

READERS = {
    "digits": tabular.digits,
    "synthetic_linear": synthetic.linear,
    "synthetic_logistic": synthetic.logistic,
}


def load(cfg) -> Bundle:
    """Read the dataset named by `cfg.name` and split it train/val/test with `cfg.split_seed`."""
    x, y, spec = READERS[cfg.name](cfg)
    return split(x, y, spec, cfg.test_fraction, cfg.val_fraction, cfg.split_seed)
