"""Losses and evaluation chosen by the task in the dataset Spec: what the fit loop validates with,
what a run's test split is scored with, and what `dlx eval` recomputes from the logged weights.

Metrics are computed on the device and read back once per evaluation, not per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dlx.tasks import CLASSIFICATION


def loss_fn(task: str) -> nn.Module:
    """MSE for regression and reconstruction (mean over pixels), cross-entropy for classes."""
    return {"regression": nn.MSELoss(), "binary": nn.BCEWithLogitsLoss(),
            "multiclass": nn.CrossEntropyLoss(), "reconstruction": nn.MSELoss()}[task]


def predict_classes(out: torch.Tensor, task: str) -> torch.Tensor:
    """Class indices from logits: threshold 0 for one binary logit, argmax for several."""
    if task == "binary":
        return (out[:, 0] > 0).long()
    return out.argmax(dim=1)


def class_targets(y: torch.Tensor, task: str) -> torch.Tensor:
    """Integer class labels from the stored targets (binary ones are (N, 1) floats)."""
    return y[:, 0].long() if task == "binary" else y


def correct(out: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    """Number of right predictions, as a device tensor (no sync); 0 where nothing is a class."""
    if task not in CLASSIFICATION:
        return torch.zeros((), dtype=torch.long, device=out.device)
    return (predict_classes(out, task) == class_targets(y, task)).sum()


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str, batch_size: int,
             transform=None):
    """Loss and task metrics (training/metrics.py names them) over a whole split.
    Returns (metrics, model outputs). `transform(x, train=False)` prepares each batch as the fit
    loop does (Bundle.batch)."""
    model.eval()
    prep = (lambda b: b) if transform is None else (lambda b: transform(b, False))  # noqa: E731
    out = torch.cat([model(prep(x[i : i + batch_size])) for i in range(0, len(x), batch_size)])
    metrics = {"loss": loss_fn(task)(out, y)}
    if task in ("regression", "reconstruction"):
        err = out - y
        metrics["mse"] = err.pow(2).mean()
        metrics["mae"] = err.abs().mean()
        if task == "regression":
            metrics["r2"] = 1 - err.pow(2).sum() / (y - y.mean(dim=0)).pow(2).sum().clamp_min(1e-12)
    else:
        metrics["accuracy"] = correct(out, y, task).float() / len(y)
    return {k: float(v) for k, v in metrics.items()}, out


@dataclass
class Scores:
    """One split scored: `metrics` named `<split>_<metric>`, the model's outputs, and for
    classifiers the true and predicted classes (numpy) that reports are made from."""

    metrics: dict[str, float]
    out: torch.Tensor
    target: np.ndarray | None = None
    pred: np.ndarray | None = None


def score(model: nn.Module, split: tuple[torch.Tensor, torch.Tensor], task: str, batch_size: int,
          transform=None, name: str = "test") -> Scores:
    """A split's metrics as a run logs them (and as `dlx eval` reproduces them)."""
    metrics, out = evaluate(model, *split, task, batch_size, transform)
    scores = Scores({f"{name}_{k}": v for k, v in metrics.items()}, out)
    if task in CLASSIFICATION:
        scores.target = class_targets(split[1], task).cpu().numpy()
        scores.pred = predict_classes(out, task).cpu().numpy()
    return scores
