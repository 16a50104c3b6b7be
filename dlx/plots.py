"""PNG figures: a run's learning curves, confusion matrix, predicted-vs-true scatter and
reconstructions (drawn by the tracking writer), a sweep's objective plot, and `dlx explain`'s
saliency maps and feature importance. matplotlib with the Agg backend (no screen needed); numpy
arrays in, no torch."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def warm() -> None:
    """Draw a throw-away figure with text, so that the first real one does not pay for loading
    the fonts (the tracking writer calls this while the run trains)."""
    import io

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.set_title("0")
    fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)


def _save(fig, path: Path, dpi: int = 100) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def learning_curves(history: list[dict[str, float]], path: Path) -> Path:
    """Loss (left) and the task metric (right) per epoch, train and validation."""
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
    order = np.argsort(mean)[::-1][:30]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(order) + 1.2))
    ax.barh([names[i] for i in order][::-1], mean[order][::-1], xerr=std[order][::-1])
    ax.set_xlabel("score drop when shuffled")
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)


def reconstructions(x: np.ndarray, out: np.ndarray, path: Path) -> Path:
    """Inputs (top row) above their reconstructions (bottom row)."""

    def image(t: np.ndarray) -> np.ndarray:
        if t.ndim == 3:  # (C, H, W): grayscale, or the first 3 channels as RGB
            return t[0] if t.shape[0] < 3 else np.clip(t[:3].transpose(1, 2, 0), 0, 1)
        flat = t.reshape(-1)
        side = math.isqrt(len(flat))
        return flat.reshape(side, side) if side * side == len(flat) else flat.reshape(1, -1)

    n = len(x)
    fig, axes = plt.subplots(2, n, figsize=(1.2 * n, 2.6), squeeze=False)
    for i in range(n):
        for row, t in enumerate((x[i], out[i])):
            axes[row][i].imshow(image(t), cmap="gray", vmin=0, vmax=1)
            axes[row][i].axis("off")
    axes[0][0].set_title("input", fontsize=8, loc="left")
    axes[1][0].set_title("reconstruction", fontsize=8, loc="left")
    return _save(fig, path, dpi=80)


def objective(rows: list[dict], axes: list[str], key: str, path: Path) -> Path | None:
    """A sweep: one panel per swept parameter, the objective of every finished child against its
    value, one colour per rung of a halving search (None when nothing was swept or finished)."""
    points = [r for r in rows if r.get(key) not in ("", None)]
    if not axes or not points:
        return None
    fig, panels = plt.subplots(1, len(axes), figsize=(4 * len(axes), 3.2), squeeze=False)
    for ax, name in zip(panels[0], axes):
        values = [r[name] for r in points]
        try:  # numeric axes on a numeric (log for lr) scale, others as categories
            xs = [float(v) for v in values]
            if name.endswith(".lr") and min(xs) > 0:
                ax.set_xscale("log")
        except ValueError:
            xs = values
        ys = [float(r[key]) for r in points]
        rungs = sorted({r.get("rung", 0) for r in points})
        for k in rungs:
            pick = [i for i, r in enumerate(points) if r.get("rung", 0) == k]
            ax.scatter([xs[i] for i in pick], [ys[i] for i in pick],
                       label=f"rung {k}" if len(rungs) > 1 else None)
        if len(rungs) > 1:
            ax.legend(fontsize=7)
        ax.set_xlabel(name)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    return _save(fig, path, dpi=80)
