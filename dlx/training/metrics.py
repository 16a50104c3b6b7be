"""Losses and metrics chosen by the task in the dataset Spec.

Metrics are computed on the device and read back once per evaluation, not per batch.
"""

from __future__ import annotations

import torch
from torch import nn


def loss_fn(task: str) -> nn.Module:
    return {"regression": nn.MSELoss(), "binary": nn.BCEWithLogitsLoss(), "multiclass": nn.CrossEntropyLoss()}[task]


def predict_classes(out: torch.Tensor, task: str) -> torch.Tensor:
    """Class indices from logits: threshold 0 for one binary logit, argmax for several."""
    if task == "binary":
        return (out[:, 0] > 0).long()
    return out.argmax(dim=1)


def correct(out: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    """Number of right predictions, as a device tensor (no sync)."""
    target = y[:, 0].long() if task == "binary" else y
    return (predict_classes(out, task) == target).sum()


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str, batch_size: int,
             transform=None):
    """Loss and task metrics over a whole split. Returns (metrics, model outputs).

    `transform(x, train=False)` prepares each batch as the fit loop does (Bundle.batch)."""
    model.eval()
    prep = (lambda b: b) if transform is None else (lambda b: transform(b, False))  # noqa: E731
    out = torch.cat([model(prep(x[i : i + batch_size])) for i in range(0, len(x), batch_size)])
    metrics = {"loss": loss_fn(task)(out, y)}
    if task == "regression":
        err = out - y
        metrics["mae"] = err.abs().mean()
        metrics["r2"] = 1 - err.pow(2).sum() / (y - y.mean(dim=0)).pow(2).sum().clamp_min(1e-12)
    else:
        metrics["accuracy"] = correct(out, y, task).float() / len(y)
    return {k: float(v) for k, v in metrics.items()}, out


def classification_report(out: torch.Tensor, y: torch.Tensor, task: str, class_names) -> dict:
    """scikit-learn's classification report (per class precision/recall/F1) as a dict."""
    from sklearn.metrics import classification_report as report

    target = (y[:, 0].long() if task == "binary" else y).cpu().numpy()
    pred = predict_classes(out, task).cpu().numpy()
    labels = list(range(len(class_names))) if class_names else None
    return report(target, pred, labels=labels, target_names=list(class_names) or None,
                  output_dict=True, zero_division=0)
