"""dataset=custom: the user's own data. `dataset._target_` names a function of their module (or a
torch Dataset subclass) that passes the trust rule (dlx/config/targets.py); every key of the
dataset node that is not dlx's own goes to it as an argument. It returns

- `(X, y)`: arrays, tensors or DataFrames, one row of X per label; dlx splits them as its own
  data (seeded, stratified for classification: dataset.test_fraction, then val_fraction);
- `{"train": (X, y), "test": (X, y)}`, with `"val"` optionally: the user's own splits (without
  "val", val_fraction of train is held out); a tuple of two or three `(X, y)` tuples likewise
  (train, test) or (train, val, test);
- a `torch.utils.data.Dataset` of `(x, y)` items, read once into memory (as is a Dataset
  subclass named as the target).

The task comes from y as for a CSV's target column (dlx/data/tabular.py `labels`); 2-D features
can be scaled (dataset.scaling), fitted on the train rows only and logged as preprocessing.json;
`dlx predict` reads new rows from a .npy file or a CSV of numbers through it. Each bad return is
one DataError naming the function and the fix.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from dlx.config import targets
from dlx.data.bundle import Bundle, Spec, _features, holdout, targets as as_targets
from dlx.data.registry import Encoder
from dlx.data.tabular import labels
from dlx.errors import ConfigError, DataError, DlxError

SPLITS = ("train", "val", "test")


def read(cfg) -> Bundle:
    """The function's data as a Bundle (see the module's docstring)."""
    from omegaconf import OmegaConf

    name = cfg._target_
    source = targets.resolve("dataset", name)
    arguments = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items()
                 if k != "_target_" and k not in targets.own_keys("dataset")}
    problems = targets.arguments("dataset", name, source, arguments)
    if problems:
        raise ConfigError("invalid config: " + "; ".join(problems))
    try:
        out = source(**arguments)
    except DlxError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's function failed: its own message
        raise DataError(f"dataset._target_={name} raised "
                        f"{' '.join(f'{type(e).__name__}: {e}'.split())}") from e
    parts, returned = _parts(out, name)
    return _bundle(cfg, name, parts, returned)


# --------------------------------------------------------------------- what the function returned
def _parts(out: Any, name: str) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    """{"all": (X, y)} or {"train", "test"[, "val"]: (X, y)} as numpy arrays, and what came back."""
    if isinstance(out, torch.utils.data.Dataset):
        return {"all": _read_dataset(out, name)}, "a torch Dataset"
    if isinstance(out, dict):
        unknown = set(out) - set(SPLITS)
        if unknown or not {"train", "test"} <= set(out):
            raise DataError(f"dataset._target_={name} returned a dict with keys "
                            f"{', '.join(map(str, out))}: return {{'train': (X, y), 'test': "
                            "(X, y)}, with 'val' optionally")
        return {k: _pair(v, name, k) for k, v in out.items()}, "its own splits"
    if isinstance(out, tuple) and len(out) in (2, 3) and all(
            isinstance(p, tuple) and len(p) == 2 for p in out) and not _array_like(out[0]):
        keys = ("train", "test") if len(out) == 2 else SPLITS
        return {k: _pair(p, name, k) for k, p in zip(keys, out)}, "its own splits"
    return {"all": _pair(out, name, None)}, "(X, y)"


def _array_like(value: Any) -> bool:
    return isinstance(value, (np.ndarray, torch.Tensor, pd.DataFrame, pd.Series))


def _pair(value: Any, name: str, split: str | None) -> tuple[np.ndarray, np.ndarray]:
    where = f"dataset._target_={name}" + (f" ({split} split)" if split else "")
    if isinstance(value, torch.utils.data.Dataset):
        return _read_dataset(value, name)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise DataError(f"{where} returned {_kind(value)}: return (X, y) (features and labels), "
                        "{'train': (X, y), 'test': (X, y)} or a torch Dataset")
    x, y = (_array(v) for v in value)
    if x.ndim < 2:
        raise DataError(f"{where} returned X of shape {x.shape}: X needs one row per sample "
                        "(2-D features, or e.g. N x C x H x W images); reshape it, e.g. "
                        "X.reshape(-1, 1)")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim not in (1, 2):
        raise DataError(f"{where} returned y of shape {y.shape}: y needs one label (or one row "
                        "of regression targets) per sample")
    if len(x) != len(y):
        raise DataError(f"{where} returned {len(x)} rows of X and {len(y)} labels: return one "
                        "label per row of X")
    if len(x) == 0:
        raise DataError(f"{where} returned no rows")
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataError(f"{where} returned X of dtype {x.dtype}: X must hold numbers (encode "
                        "text or categories first, or use dataset=csv, which one-hot encodes)")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise DataError(f"{where} returned X with {int((~np.isfinite(x)).sum())} NaN or infinite "
                        "values: fill or drop them in the function (dataset=csv imputes)")
    missing = pd.isna(pd.DataFrame(y.reshape(len(y), -1))).any(axis=1).to_numpy()
    if missing.any():
        rows = ", ".join(map(str, np.flatnonzero(missing)[:5]))
        raise DataError(f"{where} returned {int(missing.sum())} missing (NaN) labels (rows "
                        f"{rows}): drop those rows or fill them in the function")
    return x, y


def _array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, (pd.DataFrame, pd.Series)):
        return value.to_numpy()
    return np.asarray(value)


def _read_dataset(ds, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A Dataset's (x, y) items stacked into arrays (read once; it must fit in memory)."""
    try:
        items = list(ds) if isinstance(ds, torch.utils.data.IterableDataset) else \
            [ds[i] for i in range(len(ds))]
    except Exception as e:  # noqa: BLE001 - the Dataset's own code failed
        raise DataError(f"dataset._target_={name}: reading its Dataset failed: "
                        f"{' '.join(f'{type(e).__name__}: {e}'.split())}") from e
    if not items:
        raise DataError(f"dataset._target_={name} returned an empty Dataset")
    if not all(isinstance(i, (tuple, list)) and len(i) == 2 for i in items):
        raise DataError(f"dataset._target_={name}: its Dataset's items must be (x, y) pairs, "
                        f"and item 0 is {_kind(items[0])}")
    try:
        return (np.stack([_array(i[0]) for i in items]), np.stack([_array(i[1]) for i in items]))
    except ValueError as e:
        raise DataError(f"dataset._target_={name}: its Dataset's items differ in shape ({e}): "
                        "give every x the same shape (e.g. a Resize transform)") from e


def _kind(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"a {type(value).__name__}"


# ----------------------------------------------------------------------------------- the Bundle
def _bundle(cfg, name: str, parts: dict, returned: str) -> Bundle:
    """The rows of every part in one array, split train/val/test (the function's own splits, or
    dlx's seeded ones), the task from the labels, scaling fitted on the train rows."""
    order = [k for k in ("all", *SPLITS) if k in parts]
    shapes = {parts[k][0].shape[1:] for k in order}
    if len(shapes) > 1:
        raise DataError(f"dataset._target_={name} returned splits whose rows differ in shape "
                        f"({', '.join(str(s) for s in shapes)}): give every split the same features")
    x = np.concatenate([parts[k][0] for k in order])
    y_raw = np.concatenate([parts[k][1] for k in order])
    what = f"the labels y of {name}"
    if y_raw.ndim == 2:  # several regression targets per row
        if cfg.task == "classification":
            raise DataError(f"{what} have {y_raw.shape[1]} columns: a classifier takes one "
                            "label per row (set dataset.task=regression, or return 1-D y)")
        y, task, classes = y_raw.astype(np.float32), "regression", ()
    else:
        y, task, classes = labels(pd.Series(y_raw), cfg.task, cfg.max_classes, what)
    spec_task = task if task == "regression" else ("binary" if len(classes) == 2 else "multiclass")
    outputs = (len(classes) if spec_task == "multiclass" else 1) if spec_task != "regression" \
        else (y.shape[1] if y.ndim == 2 else 1)
    if cfg.vocab_size:
        if not np.issubdtype(x.dtype, np.integer) or x.min() < 0 or x.max() >= cfg.vocab_size:
            raise DataError(f"dataset.vocab_size={cfg.vocab_size} says X holds token ids, but "
                            f"{name}'s X is {x.dtype} in [{x.min()}, {x.max()}]: return integer "
                            "ids in [0, vocab_size) or set dataset.vocab_size=0")
    spec = Spec(spec_task, tuple(int(d) for d in x.shape[1:]), int(outputs), classes,
                int(cfg.vocab_size))
    stratify = spec.is_classification
    bounds = np.cumsum([0, *(len(parts[k][1]) for k in order)])
    rows = {k: np.arange(bounds[i], bounds[i + 1]) for i, k in enumerate(order)}
    if "all" in rows:
        rest, test = holdout(rows["all"], y, cfg.test_fraction, cfg.split_seed, stratify)
    else:
        rest, test = rows["train"], rows["test"]
    if "val" in rows:
        train, val = rest, rows["val"]
    else:
        train, val = holdout(rest, y, cfg.val_fraction, cfg.split_seed, stratify)
    if cfg.scaling != "none" and x.ndim != 2:
        raise ConfigError(f"dataset.scaling={cfg.scaling} scales 2-D features, and {name}'s X "
                          f"has rows of shape {x.shape[1:]}: set dataset.scaling=none")
    together = np.concatenate([train, val])  # train+val in Bundle order, for resplit

    def make(train: np.ndarray, val: np.ndarray | None) -> Bundle:
        scaler = _scaler(cfg.scaling, x[train])
        pick = lambda r: (_features(x[r] if scaler is None else scaler.transform(x[r]), spec),  # noqa: E731
                          as_targets(y[r], spec))
        n_val = 0 if val is None else len(val)
        return Bundle(
            spec, pick(train), pick(val) if n_val else None, pick(test),
            info={"n_train": len(train), "n_val": n_val, "n_test": len(test), "task": spec_task,
                  "source": name, "returned": returned, "input_shape": list(spec.input_shape)},
            artifacts={"preprocessing.json": describe(scaler, cfg.scaling)} if scaler else {},
            resplit=lambda a, b: make(together[a], None if b is None else together[b]))

    return make(train, val)


def _scaler(how: str, x: np.ndarray):
    """dataset.scaling's scikit-learn scaler fitted on the train rows, or None."""
    if how == "none":
        return None
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    return (StandardScaler() if how == "standard" else MinMaxScaler()).fit(x.astype(np.float64))


def describe(scaler, how: str) -> dict:
    """The fitted scaling as JSON (preprocessing.json): x' = (x - offset) / scale."""
    offset = scaler.mean_ if how == "standard" else scaler.data_min_
    scale = scaler.scale_ if how == "standard" else 1 / scaler.scale_
    return {"scaling": how, "offset": offset.tolist(), "scale": scale.tolist()}


# ------------------------------------------------------------------------------- dlx predict
def encode(cfg, spec: Spec, artifacts: dict):
    """dlx predict's reader for a custom run: a .npy file of rows shaped as the run's X, or a
    CSV of numbers (one row per sample, a header row optional) for 2-D features, or such an
    array in memory (a served model's input); scaled with the run's logged preprocessing.json."""
    scaling = artifacts.get("preprocessing.json")

    def read(source) -> tuple[torch.Tensor, dict]:
        from pathlib import Path

        if isinstance(source, (str, Path)):
            path = Path(source)
            x = _file_rows(path, spec)
        else:
            path, x = "the input", np.asarray(source)
        if x.ndim == len(spec.input_shape):  # one sample
            x = x[None]
        if tuple(x.shape[1:]) != tuple(spec.input_shape):
            raise DataError(f"{path} holds rows of shape {tuple(x.shape[1:])}, and the run was "
                            f"trained on rows of shape {tuple(spec.input_shape)}")
        if scaling:
            x = (x - np.asarray(scaling["offset"])) / np.asarray(scaling["scale"])
        return _features(x, spec), {"row": list(range(1, len(x) + 1))}

    dtype = "int64" if spec.vocab_size else "float64"
    return Encoder(read, {"tensor": dtype, "shape": [-1] * (1 + len(spec.input_shape))})


encode.reads = ("preprocessing.json",)


def _file_rows(path, spec: Spec) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path} does not exist: pass a .npy file or a CSV of numbers")
    if path.suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as e:
            raise DataError(f"{path} is not a numeric .npy array ({e})") from e
    if len(spec.input_shape) == 1:
        return _csv_rows(path, spec.input_shape[0])
    raise DataError(f"{path}: this run's inputs have shape {spec.input_shape}, which a "
                    "CSV cannot hold: pass a .npy array of such rows")


def _csv_rows(path, n: int) -> np.ndarray:
    frame = pd.read_csv(path, header=None, skipinitialspace=True)
    first = pd.to_numeric(frame.iloc[0], errors="coerce")
    if first.isna().any():  # a header row
        frame = frame.iloc[1:]
    values = frame.apply(pd.to_numeric, errors="coerce")
    if values.isna().any(axis=None) or frame.shape[1] != n:
        raise DataError(f"{path} must hold {n} numbers per row (the run's features, in the order "
                        f"its function returned them); it has {frame.shape[1]} columns"
                        + (" and cells that are not numbers" if values.isna().any(axis=None) else ""))
    return values.to_numpy(np.float64)
