"""Losses and metrics chosen by the task in the dataset Spec.

Metrics are computed on the device and read back once per evaluation, not per batch.
"""

from __future__ import annotations

import torch
from torch import nn


def loss_fn(task: str) -> nn.Module:
    """MSE for regression and reconstruction (mean over pixels), cross-entropy for classes."""
    return {"regression": nn.MSELoss(), "binary": nn.BCEWithLogitsLoss(),
            "multiclass": nn.CrossEntropyLoss(), "reconstruction": nn.MSELoss()}[task]


def predict_classes(out: torch.Tensor, task: str) -> torch.Tensor:
    """Class indices from logits: threshold 0 for one binary logit, argmax for several."""
    if task == "binary":
        return (out[:, 0] > 0).long()
    return out.argmax(dim=1)


def correct(out: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    """Number of right predictions, as a device tensor (no sync); 0 where nothing is a class."""
    if task not in ("binary", "multiclass"):
        return torch.zeros((), dtype=torch.long, device=out.device)
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
        metrics["mse"] = err.pow(2).mean()
        metrics["mae"] = err.abs().mean()
        metrics["r2"] = 1 - err.pow(2).sum() / (y - y.mean(dim=0)).pow(2).sum().clamp_min(1e-12)
    elif task == "reconstruction":  # the reconstruction error, per pixel/feature
        err = out - y
        metrics["mse"] = err.pow(2).mean()
        metrics["mae"] = err.abs().mean()
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


def confusion_matrix(out: torch.Tensor, y: torch.Tensor, task: str, class_names) -> dict:
    """scikit-learn's confusion matrix as JSON: rows are true classes, columns predicted ones."""
    from sklearn.metrics import confusion_matrix as cm

    target = (y[:, 0].long() if task == "binary" else y).cpu().numpy()
    pred = predict_classes(out, task).cpu().numpy()
    labels = list(range(len(class_names) or int(max(target.max(), pred.max()) + 1)))
    names = list(class_names) or [str(i) for i in labels]
    return {"labels": names, "matrix": cm(target, pred, labels=labels).tolist(),
            "rows": "true class", "columns": "predicted class"}


def reconstruction_grid(x: torch.Tensor, out: torch.Tensor, path, n: int = 8) -> None:
    """A PNG: the first `n` inputs (top row) above their reconstructions (bottom row)."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def image(t: torch.Tensor):
        t = t.detach().float().cpu()
        if t.dim() == 3:  # (C, H, W): grayscale, or the first 3 channels as RGB
            return t[0] if t.shape[0] < 3 else t[:3].permute(1, 2, 0).clamp(0, 1)
        flat = t.flatten()
        side = math.isqrt(len(flat))
        return flat.view(side, side) if side * side == len(flat) else flat.view(1, -1)

    n = min(n, len(x))
    fig, axes = plt.subplots(2, n, figsize=(1.2 * n, 2.6), squeeze=False)
    for i in range(n):
        for row, t in enumerate((x[i], out[i])):
            axes[row][i].imshow(image(t), cmap="gray", vmin=0, vmax=1)
            axes[row][i].axis("off")
    axes[0][0].set_title("input", fontsize=8, loc="left")
    axes[1][0].set_title("reconstruction", fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
