"""trainer.cv_folds: K-fold cross-validation on train+val through `dlx train`, per-fold and
mean/std metrics on the run, disjoint folds that cover the data, preprocessing refitted per fold."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures.datasets import make_csv
from omegaconf import OmegaConf

from dlx.config.dataset import CSVConfig
from dlx.data import Bundle, Spec, registry as loader
from dlx.errors import ConfigError, DataError
from dlx.training import cv


@pytest.fixture
def dlx(dlx):
    """The conftest `dlx`, one BLAS/OpenMP thread: these models are tiny, and on a shared 2-core
    machine more threads only wait for each other."""
    dlx.env["OMP_NUM_THREADS"] = "1"
    return dlx


def _json(run, name):
    return json.loads((Path(run.info.artifact_uri.removeprefix("file://")) / name).read_text())


def test_five_folds_log_fold_metrics_mean_std_then_refit_and_test(dlx):
    dlx.train("model=mlp", "trainer.cv_folds=5", "trainer.epochs=3", "trainer.device=cpu",
              "trainer.monitor=val_accuracy", "trainer.monitor_mode=max")
    (run,) = dlx.runs()
    assert run.info.status == "FINISHED"
    client = dlx.client()
    for name in ("val_accuracy", "val_loss"):
        folds = client.get_metric_history(run.info.run_id, f"fold_{name}")
        assert [m.step for m in sorted(folds, key=lambda m: m.step)] == [1, 2, 3, 4, 5]
        values = [m.value for m in folds]
        assert run.data.metrics[f"cv_mean_{name}"] == pytest.approx(np.mean(values))
        assert run.data.metrics[f"cv_std_{name}"] == pytest.approx(np.std(values))
    assert run.data.metrics["cv_mean_val_accuracy"] > 0.8  # digits, 3 epochs of an MLP
    assert len({m.value for m in client.get_metric_history(run.info.run_id, "fold_val_loss")}) == 5

    # the folds are disjoint and cover train+val, which the refit then trains on whole
    summary = _json(run, "cv_folds.json")
    rows = [r for fold in summary["val_rows"] for r in fold]
    info = _json(run, "data.json")  # the refit's: all of train+val is its train split
    assert info["n_val"] == 0 and sorted(rows) == list(range(info["n_train"]))
    assert max(map(len, summary["val_rows"])) - min(map(len, summary["val_rows"])) <= 1
    assert info["n_train"] + info["n_test"] == 1797  # the test split is never part of a fold
    assert run.data.metrics["test_accuracy"] > 0.8  # the refit model, scored once on test


def test_csv_preprocessing_is_refitted_per_fold_and_for_the_refit(dlx, tmp_path):
    path = make_csv(tmp_path / "t.csv", n=200)
    dlx.train("dataset=csv", f"dataset.path={path}", "model=mlp", "trainer.epochs=10",
              "trainer.cv_folds=3")
    (run,) = dlx.runs()
    assert run.info.status == "FINISHED" and "test_accuracy" in run.data.metrics
    # the logged preprocessing is the refit's, fitted on all of train+val, never on test
    splits, pre = _json(run, "splits.json"), _json(run, "preprocessing.json")
    assert splits["val"] == [] and len(splits["train"]) == 160
    df = pd.read_csv(path)
    assert pre["fitted"]["scale"]["mean"]["f0"] == pytest.approx(df.iloc[splits["train"]]["f0"].mean())


def test_cv_without_refit_reports_scores_only(dlx):
    proc = dlx.train("model=logistic", "trainer.cv_folds=3", "trainer.cv_refit=false",
                     "trainer.epochs=2")
    (run,) = dlx.runs()
    assert run.info.status == "FINISHED"
    assert {"cv_mean_val_loss", "cv_std_val_loss", "fold_val_accuracy"} <= set(run.data.metrics)
    assert not any(k.startswith("test_") for k in run.data.metrics)
    assert run.info.run_id in proc.stdout


def test_cv_folds_1_is_an_error_that_names_the_fix(dlx):
    proc = dlx.train("trainer.cv_folds=1", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("dlx: error: invalid config: trainer.cv_folds=1 is not "
                                   "cross-validation: use 0 (off) or K >= 2 folds")
    assert dlx.runs() == []


# ------------------------------------------------------------------------- the fold splitter
def _bundle(y: np.ndarray, task: str = "multiclass", n_val: int = 10) -> Bundle:
    spec = Spec(task, (1,), 3 if task == "multiclass" else 1)
    x = torch.arange(len(y), dtype=torch.float32)[:, None]
    yt = torch.as_tensor(y) if task == "multiclass" else torch.as_tensor(y, dtype=torch.float32)[:, None]
    return Bundle(spec, (x[n_val:], yt[n_val:]), (x[:n_val], yt[:n_val]), (x[:1], yt[:1]))


def test_folds_are_stratified_disjoint_and_cover_train_plus_val():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    data = _bundle(y)
    splits = cv.folds(data, 5, seed=42)
    assert len(splits) == 5
    pooled = torch.cat([data.train[1], data.val[1]]).numpy()
    seen = np.concatenate([v for _, v in splits])
    assert sorted(seen) == list(range(100))  # each row is held out exactly once
    for train_rows, val_rows in splits:
        assert not set(train_rows) & set(val_rows)
        assert np.bincount(pooled[val_rows]).tolist() == [10, 6, 4]  # the class shares, exactly
    # the same seed gives the same folds; another seed, others
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, cv.folds(data, 5, 42)))
    assert not np.array_equal(splits[0][1], cv.folds(data, 5, 7)[0][1])


def test_take_slices_train_plus_val_and_keeps_test():
    data = _bundle(np.repeat([0, 1, 2], 10), n_val=6)
    fold = cv.take(data, np.array([0, 7, 29]), np.array([3, 6]))
    # positions in train+val: train rows first (x = 6..29), then val rows (x = 0..5)
    assert fold.train[0][:, 0].tolist() == [6.0, 13.0, 5.0]
    assert fold.val[0][:, 0].tolist() == [9.0, 12.0]
    assert fold.test[0] is data.test[0] and fold.info["n_train"] == 3
    assert cv.take(data, np.arange(30), None).val is None


def test_regression_uses_plain_kfold_and_small_classes_are_a_data_error():
    splits = cv.folds(_bundle(np.linspace(0, 1, 20), task="regression"), 4, seed=0)
    assert sorted(np.concatenate([v for _, v in splits])) == list(range(20))
    with pytest.raises(DataError, match="a class has only 3 rows .* lower trainer.cv_folds"):
        cv.folds(_bundle(np.repeat([0, 1, 2], [20, 20, 3])), 5, seed=0)


def test_csv_resplit_fits_the_scaler_on_the_fold_train_rows_only(tmp_path):
    path = make_csv(tmp_path / "t.csv", n=120)
    data = loader.load(OmegaConf.structured(CSVConfig(path=str(path))))
    splits = cv.folds(data, 3, seed=42)
    df = pd.read_csv(path)
    rest = data.artifacts["splits.json"]["train"] + data.artifacts["splits.json"]["val"]
    for train_rows, val_rows in splits:
        fold = cv.take(data, train_rows, val_rows)
        mean = fold.artifacts["preprocessing.json"]["fitted"]["scale"]["mean"]["f1"]
        assert mean == pytest.approx(df.iloc[[rest[i] for i in train_rows]]["f1"].mean())
        assert fold.artifacts["splits.json"]["val"] == sorted(rest[i] for i in val_rows)
