"""CSV tables: `dataset.target` is the label, every other column a feature. The rows are split
train/val/test before anything is fitted; the preprocessing (dlx/data/preprocessing.py) is fitted
on the train rows only and logged with the run; `dlx predict` reads new rows through it."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import torch

from dlx.data import preprocessing
from dlx.data.bundle import Bundle, Spec, holdout, targets
from dlx.data.registry import Encoder
from dlx.errors import ConfigError, DataError


def csv(cfg) -> Bundle:
    """A CSV table: `dataset.target` is the label, every other column a feature. Rows are split
    train/val/test (seeded, stratified for classification) before anything is fitted; the
    scikit-learn preprocessing is fitted on the train rows only, logged as preprocessing.json
    (columns and fitted values) and preprocessing.joblib (the Pipeline, for predict)."""
    df, y, task, classes, unlabeled = _read_csv(cfg)
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])
               and not pd.api.types.is_bool_dtype(df[c])]
    categorical = [c for c in df.columns if c not in numeric]
    dropped = {"missing_target": unlabeled}  # rows left out, by reason
    if cfg.missing == "drop":  # a row-wise filter, fitted on nothing: done before the split
        keep = df.notna().all(axis=1).to_numpy()
        dropped["missing_features"] = int((~keep).sum())
        df, y = df[keep], y[keep]
        if len(df) == 0:
            raise DataError(f"{cfg.path}: every row has a missing value, so dataset.missing=drop "
                            "leaves nothing: use dataset.missing=mean (or median, ...)")
    stratify = task != "regression"
    rest, test = holdout(np.arange(len(y)), y, cfg.test_fraction, cfg.split_seed, stratify)
    train, val = holdout(rest, y, cfg.val_fraction, cfg.split_seed, stratify)
    rest = np.concatenate([train, val])  # train+val in Bundle order, for resplit
    spec_task = task if task == "regression" else ("binary" if len(classes) == 2 else "multiclass")

    def make(train: np.ndarray, val: np.ndarray | None) -> Bundle:
        train, val = np.sort(train), None if val is None else np.sort(val)  # file order: interpolate
        fences, n_out = None, 0
        if cfg.outliers == "iqr" and numeric:  # train rows outside the fences are dropped
            fences = preprocessing.Fences("iqr", cfg.iqr_factor).fit(df.iloc[train][numeric])
            keep = fences.inside(df.iloc[train][numeric])
            n_out, train = int((~keep).sum()), train[keep]
        elif cfg.outliers == "clip" and numeric:
            fences = preprocessing.Fences("zscore", cfg.z_threshold)  # fitted with the pipeline
        pipe = preprocessing.pipeline(cfg, numeric, categorical, spec_task, fences)
        try:
            pipe.fit(df.iloc[train], y[train])
        except ValueError as e:  # e.g. no feature above the variance threshold
            raise DataError(f"{cfg.path}: preprocessing failed on the train split: {e}") from e
        names = [str(n) for n in pipe.get_feature_names_out()]
        spec = Spec(spec_task, (len(names),), len(classes) if spec_task == "multiclass" else 1,
                    tuple(classes))
        pick = lambda rows: (torch.from_numpy(pipe.transform(df.iloc[rows]).astype(np.float32)),  # noqa: E731
                             targets(y[rows], spec))
        described = preprocessing.describe(pipe, cfg, numeric, categorical, names, classes, spec_task)
        # which data rows of the file (0 = the first after the header) went where
        file_rows = lambda r: df.index[r].tolist()  # noqa: E731
        splits = {"train": file_rows(train), "val": [] if val is None else file_rows(val),
                  "test": file_rows(test), "dropped": {**dropped, "outliers_train": n_out}}
        saved = Path(tempfile.mkdtemp(prefix="dlx-csv-")) / "preprocessing.joblib"
        joblib.dump(pipe, saved)
        return Bundle(
            spec, pick(train), pick(val) if val is not None and len(val) else None, pick(test),
            info={"n_train": len(train), "n_val": 0 if val is None else len(val),
                  "n_test": len(test), "task": spec_task, "n_features": len(names),
                  "feature_names": names,
                  "columns": {"numeric": numeric, "categorical": categorical,
                              "target": cfg.target}},
            artifacts={"preprocessing.json": described, "preprocessing.joblib": saved,
                       "splits.json": splits},
            resplit=lambda a, b: make(rest[a], None if b is None else rest[b]),
        )

    return make(train, val)


def _read_csv(cfg):
    """The table's features (a DataFrame), integer labels or float targets, the task and the
    class names; every problem with the file is one DataError naming the fix."""
    if not cfg.path:
        raise ConfigError("dataset.path is not set: dataset=csv needs dataset.path=<file.csv>")
    path = Path(cfg.path)
    df = read_table(path, cfg.encoding, "set dataset.path to a CSV file")
    if cfg.target not in df.columns:
        raise DataError(f"{path} has no column '{cfg.target}' (dataset.target): its columns are "
                        f"{', '.join(map(str, df.columns))}; set dataset.target=<one of them>")
    y = df.pop(cfg.target)
    if df.shape[1] == 0:
        raise DataError(f"{path} has only the target column '{cfg.target}': no features")
    keep = y.notna().to_numpy()  # rows without a label cannot be trained or scored
    df, y = df[keep], y[keep]  # df keeps the file's row numbers as its index
    unlabeled = int((~keep).sum())
    y, task, classes = labels(y, cfg.task, cfg.max_classes, f"{path}: target column '{cfg.target}'")
    return df, y, task, classes, unlabeled


def labels(y: pd.Series, task: str, max_classes: int, what: str):
    """(integer class codes or float targets, classification | regression, class names) of a
    label column, the task `auto` inferred as `_infer_task` says: a CSV's target column and the
    y of a dataset=custom function alike. `what` names the column in errors."""
    task = task if task != "auto" else _infer_task(y, max_classes)
    if task == "regression":
        values = pd.to_numeric(y, errors="coerce")
        if values.isna().any():
            bad = y[values.isna()].iloc[0]
            raise DataError(f"{what} holds non-numeric values (e.g. {bad!r}) but the task is "
                            "regression: fix the column or set dataset.task=classification")
        return values.to_numpy(np.float32), task, ()
    classes, codes = np.unique(y.to_numpy() if _is_number(y) else y.astype(str).to_numpy(),
                               return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"{what} has one value ({_label(classes[0])}): a classifier needs 2 or "
                        "more classes")
    return codes.astype(np.int64), task, tuple(_label(c) for c in classes)


def read_table(path, encoding: str, fix: str) -> pd.DataFrame:
    """A CSV file with a header row and data rows, for training or for `dlx predict`; every
    problem with the file is one DataError (`fix` says what to do about a missing file)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist: {fix}")
    try:
        frame = pd.read_csv(path, encoding=encoding, skipinitialspace=True)
    except pd.errors.EmptyDataError as e:
        raise DataError(f"{path} is empty: a CSV needs a header row and data rows") from e
    except pd.errors.ParserError as e:
        raise DataError(f"{path} is malformed ({str(e).strip()}): every row needs as many fields "
                        "as the header") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not {encoding} text (byte {e.start}): re-save it as UTF-8 "
                        "or set dataset.encoding (e.g. latin-1)") from e
    if len(frame) == 0:
        raise DataError(f"{path} has a header but no data rows")
    return frame


def _is_number(y) -> bool:
    return pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)


def _label(value) -> str:
    """A class name: 1.0 -> "1", "cat" -> "cat"."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _infer_task(y, max_classes: int) -> str:
    """Text or few distinct values (at most max_classes, all integers) -> classification;
    other numbers -> regression."""
    if not _is_number(y):
        return "classification"
    values = y.unique()
    integral = np.all(np.mod(values.astype(float), 1) == 0)
    return "classification" if integral and len(values) <= max_classes else "regression"


def encode_csv(cfg, spec, artifacts):
    """dlx predict's reader for a csv run: a CSV with the run's feature columns (the target and
    any other column may be there too: they are ignored), or a DataFrame of them (a served
    model's input), through the run's fitted Pipeline (preprocessing.joblib, fitted on its train
    rows; never refitted on the new rows)."""
    described = artifacts["preprocessing.json"]

    @functools.cache
    def fitted():  # read the fitted objects only when predicting, once
        pipe = joblib.load(artifacts["preprocessing.joblib"])
        columns = [str(c) for c in pipe.feature_names_in_]  # the training order sklearn checks
        numeric = [c for c in columns if c in described["numeric_columns"]]
        as_text = set()  # text categories: "1" in a new file must stay "1"
        if described["categorical_columns"]:
            one_hot = pipe.named_steps["columns"].named_transformers_["cat"].named_steps["one_hot"]
            as_text = {c for c, cats in zip(described["categorical_columns"], one_hot.categories_)
                       if cats.dtype == object}
        return pipe, columns, numeric, as_text

    def encode(source) -> tuple[torch.Tensor, dict]:
        pipe, columns, numeric, as_text = fitted()
        if isinstance(source, pd.DataFrame):
            what, frame = "the input", source
            if len(frame) == 0:
                raise DataError("the input holds no rows: send one input per row")
        else:
            what, frame = source, read_table(source, cfg.encoding, "pass the path of a CSV to predict on")
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataError(f"{what} lacks column(s) {', '.join(missing)}: the run was trained on "
                            f"{', '.join(columns)} (its columns are "
                            f"{', '.join(map(str, frame.columns)) or 'none'}; others are ignored)")
        frame = frame[columns].copy()
        if numeric:
            frame[numeric] = numbers(what, frame[numeric])
        for c in as_text:  # missing cells as NaN, what the imputer fills (a served input's None)
            frame[c] = frame[c].map(lambda v: np.nan if pd.isna(v) else _label(v)).astype(object)
        x = pipe.transform(frame).astype(np.float32)
        return torch.from_numpy(x), {"row": list(range(1, len(frame) + 1))}

    types = {**dict.fromkeys(described["numeric_columns"], "double"),
             **dict.fromkeys(described["categorical_columns"], "string")}
    return Encoder(encode, {"columns": types})


encode_csv.reads = ("preprocessing.json", "preprocessing.joblib")


def numbers(path, frame: pd.DataFrame) -> pd.DataFrame:
    """The columns as numbers (empty cells stay missing); text in one is a DataError naming it."""
    out = frame.apply(pd.to_numeric, errors="coerce")
    bad = frame.notna() & out.isna()
    if bad.any(axis=None):
        column = bad.any().idxmax()
        row = int(np.argmax(bad[column].to_numpy()))
        raise DataError(f"{path}: column '{column}' must hold numbers, but data row {row + 1} holds "
                        f"{frame[column].iloc[row]!r}: fix the value or leave the cell empty")
    return out
