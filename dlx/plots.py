"""PNG figures logged with runs: learning curves, confusion matrix, predicted-vs-true scatter,
saliency maps and feature importance. matplotlib with the Agg backend (no screen needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _plt().close(fig)
    return path


def learning_curves(history: list[dict[str, float]], path: Path) -> Path:
    """Loss (left) and the task metric (right) per epoch, train and validation."""
    plt = _plt()
    epochs = np.arange(1, len(history) + 1)
    metric = next((m for m in ("accuracy", "r2", "mae") if f"val_{m}" in history[0]
                   or f"train_{m}" in history[0]), None)
    fig, axes = plt.subplots(1, 2 if metric else 1, figsize=(9 if metric else 4.5, 3.4),
                             squeeze=False)
    for ax, name in zip(axes[0], ["loss", metric]):
        for split in ("train", "val"):
            key = f"{split}_{name}"
            if key in history[0]:
                ax.plot(epochs, [h.get(key, np.nan) for h in history], label=split, marker=".")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def confusion_matrix(cm: dict, path: Path) -> Path:
    """The confusion matrix JSON (rows true, columns predicted) as a heat map with counts."""
    plt = _plt()
    m = np.array(cm["matrix"])
    labels = cm["labels"]
    size = max(3.5, 0.45 * len(labels) + 1.5)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 10 else 0)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if m[i, j] > m.max() / 2 else "black")
    return _save(fig, path)


def predicted_vs_true(pred: np.ndarray, true: np.ndarray, path: Path) -> Path:
    """Regression: every test point's prediction against its target, with the y = x line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(true, pred, s=10, alpha=0.7)
    lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], color="gray", linestyle="--", linewidth=1)
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def saliency_grid(images: np.ndarray, saliency: np.ndarray, titles: list[str], path: Path) -> Path:
    """Inputs (top row) over their gradient saliency maps (bottom row)."""
    plt = _plt()
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.4 * n, 3.0), squeeze=False)
    for i in range(n):
        img = images[i]
        img = img[0] if img.shape[0] == 1 else np.clip(img[:3].transpose(1, 2, 0), 0, 1)
        axes[0][i].imshow(img, cmap="gray")
        axes[0][i].set_title(titles[i], fontsize=7)
        axes[1][i].imshow(saliency[i], cmap="hot")
        for row in (0, 1):
            axes[row][i].axis("off")
    return _save(fig, path)


def importance_bars(names: list[str], mean: np.ndarray, std: np.ndarray, path: Path) -> Path:
    """Permutation importance, largest first: the drop in score when a feature is shuffled."""
    plt = _plt()
    order = np.argsort(mean)[::-1][:30]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(order) + 1.2))
    ax.barh([names[i] for i in order][::-1], mean[order][::-1], xerr=std[order][::-1])
    ax.set_xlabel("score drop when shuffled")
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)
