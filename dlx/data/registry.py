"""config -> Bundle. One registry: each dataset name maps to its family module's reader and, for
`dlx predict`, its encoder of new inputs. Family modules are imported only when used, so a run
on digits never imports pandas or torchvision.

A reader returns either (x, y, spec) arrays, which `split` cuts train/val/test, or a ready Bundle:
datasets with a published test split (MNIST, CIFAR-10, IMDB), data kept in its own dtype (uint8
images), or preprocessing fitted on the train rows (CSV, the IMDB vocabulary) split themselves.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from omegaconf import OmegaConf

from dlx.data.bundle import Bundle, split

# name -> (module, reader, encoder or None): the encoder makes(cfg, spec, artifacts) an Encoder
# that reads a user's input for `dlx predict` and for a served model; `artifacts` are the fitted
# objects a run logged (vocab.json, preprocessing.*), so a finished run's own can be passed in
# place of the Bundle's. Each encoder names the artifacts it reads in its `reads` attribute.
DATASETS = {
    "digits": ("vision", "digits", "encode_digits"),
    "mnist": ("vision", "mnist", "encode_images"),
    "fashion_mnist": ("vision", "fashion_mnist", "encode_images"),
    "cifar10": ("vision", "cifar10", "encode_images"),
    "image_folder": ("vision", "image_folder", "encode_images"),
    "imdb": ("text", "imdb", "encode_reviews"),
    "csv": ("tabular", "csv", "encode_csv"),
    "synthetic_linear": ("synthetic", "linear", None),
    "synthetic_logistic": ("synthetic", "logistic", None),
    "synthetic_sequence": ("synthetic", "sequence", None),
    "custom": ("custom", "read", "encode"),  # the user's own function or Dataset
}


def _function(module: str, name: str):
    return getattr(importlib.import_module(f"dlx.data.{module}"), name)


def load(cfg) -> Bundle:
    """Read the dataset named by `cfg.name` and split it train/val/test with `cfg.split_seed`."""
    module, reader, _ = DATASETS[cfg.name]
    out = _function(module, reader)(cfg)
    if isinstance(out, Bundle):
        bundle = out
    else:
        x, y, spec = out
        bundle = split(x, y, spec, cfg.test_fraction, cfg.val_fraction, cfg.split_seed)
    return bundle


_CACHE: dict[str, Bundle] = {}


def load_cached(cfg) -> tuple[Bundle, bool]:
    """The dataset, read once per process and reused by later jobs of an in-process sweep; True
    when it came from the cache. Keyed by the dataset config without batch_size (which only
    changes how it is batched); one dataset at a time, so a sweep over datasets does not pile
    them up."""
    options = OmegaConf.to_container(cfg, resolve=True)
    options.pop("batch_size", None)
    key = repr(sorted(options.items()))
    if key in _CACHE:
        return _CACHE[key], True
    data = load(cfg)
    _CACHE.clear()
    _CACHE[key] = data
    return data, False


@dataclass
class Encoder:
    """A dataset's reader of new inputs. `read(source)` takes what `dlx predict` is given (a
    file or folder) or the same inputs in memory, as a served model receives them (`inputs`
    says what: {"columns": {name: type}} for a DataFrame, {"tensor": dtype, "shape": [...]} for
    an array, -1 for any size), and returns (x as the dataset stores it, {id column: values});
    `transform` is the dataset's per-batch transform that x needs (uint8 images -> floats)."""
    read: Callable[[Any], tuple[Any, dict]]
    inputs: dict
    transform: Callable | None = None

    def __call__(self, source) -> tuple[Any, dict]:
        return self.read(source)


def encoder(cfg, spec, artifacts) -> Encoder | None:
    """The reader of new inputs for dataset `cfg.name` (None: it cannot read any)."""
    module, _, make = DATASETS[cfg.name]
    return None if make is None else _function(module, make)(cfg, spec, artifacts)


def fitted(name: str) -> tuple[str, ...]:
    """The artifacts of a run (as the run logged them) that dataset `name`'s encoder reads: what
    a served model of the run carries beside its network."""
    module, _, make = DATASETS[name]
    return () if make is None else tuple(getattr(_function(module, make), "reads", ()))


def source(cfg) -> dict:
    """What a run's dataset is, for MLflow's dataset records: its name and where it comes from
    (the CSV's file name and path, a torchvision root, scikit-learn's bundled digits, ...)."""
    for key in ("path", "root"):
        where = cfg.get(key)
        if where:
            from pathlib import Path

            path = Path(where).expanduser().resolve()
            return {"name": path.name if key == "path" else cfg.name, "source_type": "local",
                    "source": {"uri": str(path)}}
    if cfg.name == "custom":
        return {"name": str(cfg._target_), "source_type": "code",
                "source": {"tags": {"function": str(cfg._target_)}}}
    if cfg.name == "digits":
        return {"name": "digits", "source_type": "code",
                "source": {"tags": {"loader": "sklearn.datasets.load_digits"}}}
    return {"name": cfg.name, "source_type": "code",  # synthetic: drawn from its seed
            "source": {"tags": {"generator": f"dlx.data.synthetic (seed {cfg.get('seed')})"}}}
