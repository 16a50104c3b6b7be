"""What K-fold cross-validation trains on (the training itself: dlx/sweep/cv.py).

The train and val splits are pooled and cut into K folds (scikit-learn's StratifiedKFold for
classification, KFold otherwise, shuffled with dataset.split_seed); the test split is never part
of one. Preprocessing fitted on train rows (CSV scalers, the IMDB vocabulary) is refitted per fold
through Bundle.resplit, so no fold sees statistics of its held-out rows. The refit after
cross-validation trains on all of train+val (`refit_data`), which is also how `dlx eval` and
`dlx predict` rebuild a cross-validated run's data.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from dlx.data import Bundle
from dlx.errors import DataError


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
