"""What a dataset hands to the rest of dlx: tensors for each split and a Spec describing them.

Models are built from the Spec alone; they never read dataset config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import torch

from dlx.errors import DataError


@dataclass(frozen=True)
class Spec:
    task: str  # regression | binary | multiclass | reconstruction (targets = inputs)
    input_shape: tuple[int, ...]  # one sample, e.g. (1, 8, 8) or (2,)
    num_outputs: int  # classes for multiclass, 1 for binary, targets for regression
    class_names: tuple[str, ...] = ()
    vocab_size: int = 0  # > 0: inputs are int64 token ids (0 = <pad>, 1 = <unk>); 0: not tokens

    @property
    def is_classification(self) -> bool:
        return self.task in ("binary", "multiclass")


@dataclass
class Bundle:
    spec: Spec
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor] | None
    test: tuple[torch.Tensor, torch.Tensor]
    info: dict = field(default_factory=dict)  # sizes etc., logged with the run as data.json
    # name -> dict (logged as JSON), str (text) or pathlib.Path (a file): vocab, fitted scalers...
    artifacts: dict[str, Any] = field(default_factory=dict)
    # applied on the device to every batch: (x, train) -> float x. Lets a dataset keep uint8
    # images on the device and scale/augment per batch. None: x is used as stored.
    transform: Callable[[torch.Tensor, bool], torch.Tensor] | None = None
    # for cross-validation: (train rows, val rows or None) -> a Bundle whose train/val are those
    # rows of train+val (train first, then val) with preprocessing refitted on the new train rows
    # (CSV scalers, IMDB vocab). None: the stored tensors are simply sliced.
    resplit: Callable[[np.ndarray, np.ndarray | None], "Bundle"] | None = None

    def batch(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        return x if self.transform is None else self.transform(x, train)

    def for_reconstruction(self) -> "Bundle":
        """The same rows with targets = inputs (after the batch transform), task reconstruction:
        what an autoencoder trains on. The labels are dropped."""
        def recon(s):
            if s is None:
                return None
            x = torch.cat([self.batch(s[0][i : i + 4096], False) for i in range(0, len(s[0]), 4096)])
            return x, x
        spec = replace(self.spec, task="reconstruction", num_outputs=int(np.prod(self.spec.input_shape)),
                       class_names=())
        resplit = None if self.resplit is None else (lambda *rows: self.resplit(*rows).for_reconstruction())
        return replace(self, spec=spec, train=recon(self.train), val=recon(self.val),
                       test=recon(self.test), transform=None, resplit=resplit)

    def to(self, device: torch.device) -> "Bundle":
        """Move every split onto `device` once; batches are then sliced there."""
        move = lambda s: None if s is None else (s[0].to(device), s[1].to(device))  # noqa: E731
        return replace(self, train=move(self.train), val=move(self.val), test=move(self.test))


def split(x: np.ndarray, y: np.ndarray, spec: Spec, test_fraction: float, val_fraction: float,
          seed: int) -> Bundle:
    """Seeded train/val/test split (stratified for classification) into float/long tensors:
    test_fraction of all rows held out, then val_fraction of the rest."""
    rows = np.arange(len(y))
    rest, test = holdout(rows, y, test_fraction, seed, spec.is_classification)
    train, val = holdout(rest, y, val_fraction, seed, spec.is_classification)
    pick = lambda r: (_features(x[r], spec), targets(y[r], spec))  # noqa: E731
    return Bundle(spec, pick(train), pick(val) if len(val) else None, pick(test),
                  info={"n_train": len(train), "n_val": len(val), "n_test": len(test)})


def holdout(rows: np.ndarray, y: np.ndarray, fraction: float, seed: int,
            stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of the row indices `rows` into (kept, held out); both sorted, so each split
    keeps the file order. ceil(fraction * rows) are held out (as scikit-learn's train_test_split
    counts them); stratified on y[rows] for classification: each class gives its share, rounded
    by largest remainder, so no class is off by a row or more. fraction 0: nothing held."""
    if fraction <= 0:
        return np.sort(rows), rows[:0]
    n = len(rows)
    n_held = math.ceil(fraction * n)
    rng = np.random.default_rng(seed)
    problem = None
    if not 0 < n_held < n:
        problem = f"that leaves {n - n_held} rows to keep"
    elif not stratify:
        held = rng.permutation(rows)[:n_held]
    else:
        classes, inverse, counts = np.unique(y[rows], return_inverse=True, return_counts=True)
        if counts.min() < 2:
            problem = "a class has only 1 row, too few to put one on each side"
        elif min(n_held, n - n_held) < len(classes):
            problem = f"{min(n_held, n - n_held)} rows cannot hold each of {len(classes)} classes"
        else:
            ideal = counts * n_held / n
            take = np.floor(ideal).astype(int)
            extra = np.argsort(-(ideal - take), kind="stable")[: n_held - take.sum()]
            take[extra] += 1
            held = np.concatenate([rng.permutation(rows[inverse == c])[: take[c]]
                                   for c in range(len(classes))])
    if problem:
        raise DataError(f"cannot hold out {fraction:g} of {n} rows"
                        f"{' stratified by class' if stratify else ''}: {problem} (use more "
                        "data, e.g. dataset.n_samples, or change dataset.test_fraction/val_fraction)")
    kept = np.setdiff1d(rows, held)
    return np.sort(kept), np.sort(held)


def _features(x: np.ndarray, spec: Spec | None = None) -> torch.Tensor:
    """float32 features, or int64 token ids when the Spec says the inputs are tokens."""
    dtype = torch.int64 if spec is not None and spec.vocab_size > 0 else torch.float32
    return torch.as_tensor(np.ascontiguousarray(x), dtype=dtype)


def targets(y: np.ndarray, spec: Spec) -> torch.Tensor:
    """Labels as the loss wants them: long (N,) for multiclass, float (N, 1) otherwise."""
    if spec.task == "multiclass":
        return torch.as_tensor(y, dtype=torch.long)
    y = torch.as_tensor(y, dtype=torch.float32)
    return y.reshape(len(y), -1)  # (N, outputs) for BCE-with-logits and MSE
