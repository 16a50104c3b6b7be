"""`dlx explain`: what a trained model looks at, on the test split.

Tabular runs: permutation feature importance (scikit-learn's, over the logged model).
Image runs: gradient saliency, |d score of the predicted class / d pixel|.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlx import plots
from dlx.errors import DlxError
from dlx.inference import Loaded


class _Estimator:
    """The least scikit-learn's permutation_importance needs: fit, and a score to compare."""

    def __init__(self, loaded: Loaded):
        self.loaded = loaded

    def fit(self, x, y):
        return self

    @torch.inference_mode()
    def score(self, x, y) -> float:
        data, task = self.loaded.data, self.loaded.data.spec.task
        out = self.loaded.model(data.batch(torch.as_tensor(x), False))
        y = torch.as_tensor(y)
        if task == "regression":
            return float(1 - (out - y).pow(2).sum() / (y - y.mean(0)).pow(2).sum())
        from dlx.training.evaluation import correct

        return float(correct(out, y, task)) / len(y)


def feature_importance(loaded: Loaded, out_dir: Path, n_repeats: int = 5) -> dict[str, Any]:
    from sklearn.inspection import permutation_importance

    x, y = loaded.data.test
    names = list(loaded.data.info.get("feature_names") or [f"x{i}" for i in range(x.shape[1])])
    result = permutation_importance(_Estimator(loaded), x.numpy(), y.numpy(),
                                    n_repeats=n_repeats, random_state=42)
    csv_path = out_dir / "feature_importance.csv"
    order = np.argsort(result.importances_mean)[::-1]
    lines = ["feature,importance_mean,importance_std"]
    lines += [f"{names[i]},{result.importances_mean[i]:.6f},{result.importances_std[i]:.6f}"
              for i in order]
    csv_path.write_text("\n".join(lines) + "\n")
    png = plots.importance_bars(names, result.importances_mean, result.importances_std,
                                out_dir / "feature_importance.png")
    return {"kind": "permutation importance", "files": [csv_path, png],
            "top": [(names[i], float(result.importances_mean[i])) for i in order[:5]]}


def saliency(loaded: Loaded, out_dir: Path, n: int = 8) -> dict[str, Any]:
    data = loaded.data
    x = data.batch(data.test[0][:n], False).clone().requires_grad_(True)
    out = loaded.model(x)
    if data.spec.task == "binary":
        picked = out[:, 0]
        labels = (out[:, 0] > 0).long()
    else:
        labels = out.argmax(1)
        picked = out.gather(1, labels[:, None])[:, 0]
    picked.sum().backward()
    sal = x.grad.abs().amax(dim=1).numpy()  # strongest channel per pixel
    names = data.spec.class_names or tuple(map(str, range(out.shape[1])))
    titles = [f"pred {names[int(i)]}" for i in labels]
    png = plots.saliency_grid(x.detach().numpy(), sal, titles, out_dir / "saliency.png")
    return {"kind": "gradient saliency", "files": [png]}


def explain(loaded: Loaded, out_dir: Path) -> dict[str, Any]:
    spec = loaded.data.spec
    out_dir.mkdir(parents=True, exist_ok=True)
    if spec.task == "reconstruction":
        raise DlxError("dlx explain covers classifiers and regressors; this run is an autoencoder "
                       "(see its reconstructions.png artifact)")
    if len(spec.input_shape) == 3:
        return saliency(loaded, out_dir)
    if len(spec.input_shape) == 1 and spec.vocab_size == 0:
        return feature_importance(loaded, out_dir)
    raise DlxError("dlx explain covers tabular and image runs; this run's inputs are token "
                   "sequences")
