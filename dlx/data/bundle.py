"""What a dataset hands to the rest of dlx: tensors for each split and a Spec describing them.

Models are built from the Spec alone; they never read dataset config.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from dlx.errors import DataError

TASKS = ("regression", "binary", "multiclass", "reconstruction")


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

    # for `dlx predict`: a user's input file (CSV, image or folder, text) -> (model inputs, stored
    # the way the splits are (before `transform`); {column: one value per input} naming each input,
    # e.g. {"file": [...]}). None: the dataset cannot read new inputs. See loader.ENCODERS.
    encode: Callable[[Any], tuple[torch.Tensor, dict]] | None = None

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


def split(
    x: np.ndarray,
    y: np.ndarray,
    spec: Spec,
    test_fraction: float,
    val_fraction: float,
    seed: int,
) -> Bundle:
    """Seeded train/val/test split (stratified for classification) into float/long tensors."""
    stratify = y if spec.is_classification else None
    try:
        x_rest, x_test, y_rest, y_test = train_test_split(
            x, y, test_size=test_fraction, random_state=seed, stratify=stratify
        )
        val = None
        if val_fraction > 0:
            stratify = y_rest if spec.is_classification else None
            x_rest, x_val, y_rest, y_val = train_test_split(
                x_rest, y_rest, test_size=val_fraction, random_state=seed, stratify=stratify
            )
            val = (x_val, y_val)
    except ValueError as e:  # too few rows, or a class too small to stratify: as holdout() says
        raise DataError(f"cannot split {len(y)} rows {test_fraction:g} test / {val_fraction:g} val"
                        f"{' stratified by class' if spec.is_classification else ''}: "
                        f"{str(e).splitlines()[0]} (use more data, e.g. dataset.n_samples, or "
                        "change dataset.test_fraction/val_fraction)") from e
    as_t = lambda a, b: (_features(a, spec), _targets(b, spec))  # noqa: E731
    return Bundle(
        spec,
        as_t(x_rest, y_rest),
        None if val is None else as_t(*val),
        as_t(x_test, y_test),
        info={"n_train": len(x_rest), "n_val": 0 if val is None else len(val[0]), "n_test": len(x_test)},
    )


def _features(x: np.ndarray, spec: Spec | None = None) -> torch.Tensor:
    """float32 features, or int64 token ids when the Spec says the inputs are tokens."""
    dtype = torch.int64 if spec is not None and spec.vocab_size > 0 else torch.float32
    return torch.as_tensor(np.ascontiguousarray(x), dtype=dtype)


def _targets(y: np.ndarray, spec: Spec) -> torch.Tensor:
    if spec.task == "multiclass":
        return torch.as_tensor(y, dtype=torch.long)
    y = torch.as_tensor(y, dtype=torch.float32)
    return y.reshape(len(y), -1)  # (N, outputs) for BCE-with-logits and MSE


def holdout(rows: np.ndarray, y: np.ndarray, fraction: float, seed: int,
            stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of the row indices `rows` into (kept, held out), stratified on y[rows] for
    classification; both sorted, so each split keeps the file order. fraction 0: nothing held."""
    if fraction <= 0:
        return np.sort(rows), rows[:0]
    try:
        kept, held = train_test_split(rows, test_size=fraction, random_state=seed,
                                      stratify=y[rows] if stratify else None)
    except ValueError as e:  # too few rows, or a class too small to stratify
        raise DataError(f"cannot hold out {fraction:g} of {len(rows)} rows"
                        f"{' stratified by class' if stratify else ''}: {e} "
                        "(use more data or change dataset.test_fraction/val_fraction)") from e
    return np.sort(kept), np.sort(held)


def targets(y: np.ndarray, spec: Spec) -> torch.Tensor:
    """Labels as the loss wants them: long (N,) for multiclass, float (N, 1) otherwise."""
    return _targets(y, spec)
