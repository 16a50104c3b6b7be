"""K-fold cross-validation on train+val, as GridSearchCV(cv=K) scores one parameter setting.

The train and val splits are pooled and cut into K folds (scikit-learn's StratifiedKFold for
classification, KFold otherwise, shuffled with dataset.split_seed). Each fold trains a fresh model
through `fit` (unchanged) on the other K-1 folds and is scored on its own; the test split is never
touched. Preprocessing fitted on train rows (CSV scalers, the IMDB vocabulary) is refitted per
fold through Bundle.resplit, so no fold sees statistics of its held-out rows.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
import torch

from dlx.data import Bundle
from dlx.errors import DataError
from dlx.training.evaluation import evaluate
from dlx.training.fit import Callback, fit


def folds(data: Bundle, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, val rows) per fold, as positions in train+val (train first, then val)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    y = torch.cat([data.train[1], data.val[1]]) if data.val is not None else data.train[1]
    y = y.cpu().numpy()
    if not data.spec.is_classification:
        if len(y) < k:
            raise DataError(f"trainer.cv_folds={k} but train+val holds {len(y)} rows: "
                            "lower trainer.cv_folds")
        return list(KFold(k, shuffle=True, random_state=seed).split(y))
    y = y.reshape(len(y), -1)[:, 0]  # binary labels are (N, 1)
    counts = np.bincount(y.astype(np.int64))
    smallest = int(counts[counts > 0].min())
    if smallest < k:
        raise DataError(f"trainer.cv_folds={k} but a class has only {smallest} rows in train+val, "
                        "too few to put one in every fold: lower trainer.cv_folds")
    return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(y, y))


def take(data: Bundle, train_rows: np.ndarray, val_rows: np.ndarray | None) -> Bundle:
    """A Bundle whose train/val are these rows of train+val; the test split stays as it is.
    Datasets with fitted preprocessing refit it on the new train rows (Bundle.resplit)."""
    if data.resplit is not None:
        return data.resplit(train_rows, val_rows)
    x, y = data.train
    if data.val is not None:
        x, y = torch.cat([x, data.val[0]]), torch.cat([y, data.val[1]])
    pick = lambda rows: (x[torch.as_tensor(rows)], y[torch.as_tensor(rows)])  # noqa: E731
    n_val = 0 if val_rows is None else len(val_rows)
    return replace(data, train=pick(train_rows), val=pick(val_rows) if n_val else None,
                   info={**data.info, "n_train": len(train_rows), "n_val": n_val})


def refit_data(data: Bundle) -> Bundle:
    """What the refit trains on: all of train+val as the train split, no val split (with its
    preprocessing refitted on those rows). `dlx eval`/`predict` rebuild a CV run's data this way."""
    n = len(data.train[0]) + (0 if data.val is None else len(data.val[0]))
    return take(data, np.arange(n), None)


def cross_validate(
    cfg,
    data: Bundle,
    device: torch.device,
    setup: Callable[[Bundle], tuple[torch.nn.Module, torch.optim.Optimizer, dict]],
    callbacks: list[Callback] = (),
    recorder=None,
) -> tuple[dict, Bundle]:
    """trainer.cv_folds fits, each scored on its held-out fold.

    `setup(bundle) -> (model, optimizer, fit options)` builds a fresh model the way the run
    does (regularizers, lr schedule, ...). The recorder logs `fold_val_<metric>` with step=fold,
    then `cv_mean_` / `cv_std_val_<metric>` and cv_folds.json.
    Returns the summary (per-fold scores, mean, std) and the Bundle to refit on: all of
    train+val as its train split, no val split."""
    k, seed = cfg.trainer.cv_folds, cfg.dataset.split_seed
    splits = folds(data, k, seed)
    scores = []
    for i, (train_rows, val_rows) in enumerate(splits, 1):
        fold = take(data, train_rows, val_rows).to(device)
        torch.manual_seed(cfg.trainer.seed)  # every fold starts from the same initial weights
        model, optimizer, options = setup(fold)
        fit(model, optimizer, fold, cfg.trainer.epochs, cfg.dataset.batch_size, cfg.trainer.seed,
            callbacks=callbacks, **options)
        # the model as fit returns it (early stopping may have restored its best epoch)
        val, _ = evaluate(model, *fold.val, fold.spec.task, cfg.dataset.batch_size, fold.transform)
        scores.append({f"val_{name}": value for name, value in val.items()})
        if recorder:
            recorder.fold(i, scores[-1])
    mean = {name: float(np.mean([s[name] for s in scores])) for name in scores[0]}
    std = {name: float(np.std([s[name] for s in scores])) for name in scores[0]}  # as GridSearchCV
    summary = {"k": k, "seed": seed, "stratified": data.spec.is_classification,
               "n_rows": sum(len(v) for _, v in splits), "scores": scores, "mean": mean, "std": std,
               "val_rows": [v.tolist() for _, v in splits]}
    if recorder:
        recorder.cross_validation(summary)
    return summary, refit_data(data)
