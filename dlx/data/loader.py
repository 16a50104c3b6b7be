"""config -> Bundle. Each dataset name maps to the function that reads it (one module per family).

A reader returns either (x, y, spec) arrays, which `split` cuts train/val/test, or a ready Bundle:
datasets with a published test split (MNIST, CIFAR-10, IMDB), data kept in its own dtype (uint8
images), or preprocessing fitted on the train rows (CSV, the IMDB vocabulary) split themselves.
"""

from __future__ import annotations

from dlx.data import synthetic, tabular, text, vision
from dlx.data.bundle import Bundle, split

READERS = {
    "digits": tabular.digits,
    "synthetic_linear": synthetic.linear,
    "synthetic_logistic": synthetic.logistic,
    "synthetic_sequence": synthetic.sequence,
    "mnist": vision.mnist,
    "fashion_mnist": vision.fashion_mnist,
    "cifar10": vision.cifar10,
    "image_folder": vision.image_folder,
    "imdb": text.imdb,
    "csv": tabular.csv,
}


def load(cfg) -> Bundle:
    """Read the dataset named by `cfg.name` and split it train/val/test with `cfg.split_seed`."""
    out = READERS[cfg.name](cfg)
    if isinstance(out, Bundle):
        bundle = out
    else:
        x, y, spec = out
        bundle = split(x, y, spec, cfg.test_fraction, cfg.val_fraction, cfg.split_seed)
    bundle.encode = encoder(cfg, bundle.spec, bundle.artifacts)
    return bundle


# `dlx predict`: dataset name -> make(cfg, spec, artifacts) -> encode(user's input) -> (x, ids).
# `artifacts` are the fitted objects a run logged (vocab.json, preprocessing.*), so a finished
# run's own can be passed in place of the Bundle's.
ENCODERS = {
    "digits": tabular.encode_digits,
    "csv": tabular.encode_csv,
    "mnist": vision.encode_images,
    "fashion_mnist": vision.encode_images,
    "cifar10": vision.encode_images,
    "image_folder": vision.encode_images,
    "imdb": text.encode_reviews,
}


def encoder(cfg, spec, artifacts):
    """The reader of new inputs for dataset `cfg.name` (None: it cannot read any)."""
    make = ENCODERS.get(cfg.name)
    return None if make is None else make(cfg, spec, artifacts)
