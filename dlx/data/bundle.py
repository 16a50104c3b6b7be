"""What a dataset hands to the rest of dlx: tensors for each split and a Spec describing them.

Models are built from the Spec alone; they never read dataset config.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import torch
from sklearn.model_selection import train_test_split

TASKS = ("regression", "binary", "multiclass")


@dataclass(frozen=True)
class Spec:
    task: str  # regression | binary | multiclass
    input_shape: tuple[int, ...]  # one sample, e.g. (1, 8, 8) or (2,)
    num_outputs: int  # classes for multiclass, 1 for binary, targets for regression
    class_names: tuple[str, ...] = ()

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

    def batch(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        return x if self.transform is None else self.transform(x, train)

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
    as_t = lambda a, b: (_features(a), _targets(b, spec))  # noqa: E731
    return Bundle(
        spec,
        as_t(x_rest, y_rest),
        None if val is None else as_t(*val),
        as_t(x_test, y_test),
        info={"n_train": len(x_rest), "n_val": 0 if val is None else len(val[0]), "n_test": len(x_test)},
    )


def _features(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)


def _targets(y: np.ndarray, spec: Spec) -> torch.Tensor:
    if spec.task == "multiclass":
        return torch.as_tensor(y, dtype=torch.long)
    y = torch.as_tensor(y, dtype=torch.float32)
    return y.reshape(len(y), -1)  # (N, outputs) for BCE-with-logits and MSE
