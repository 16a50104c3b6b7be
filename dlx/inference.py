"""Using a finished run: find it, rebuild its data from its own resolved config, load its logged
model, then evaluate it on a split or predict on new inputs. `dlx eval` and `dlx predict`."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from dlx import models, tracking
from dlx.data import Bundle, loader
from dlx.errors import ConfigError, DataError, DlxError
from dlx.training import metrics


class _Logged(nn.Module):
    """A logged model as loaded back. An exported (pt2) graph is fixed in eval mode and refuses
    .eval()/.train(), so switching modes is a no-op here."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)

    def train(self, mode: bool = True):
        return self


@dataclass
class Loaded:
    run: dict[str, Any]
    cfg: DictConfig
    data: Bundle
    model: nn.Module
    uri: str
    transform: Any = None  # the dataset's per-batch transform (uint8 images -> floats), kept for
    #   predict: an autoencoder's reconstruction Bundle has none, its splits being transformed


def find_run(ref: str, uri: str) -> dict[str, Any]:
    """RUN as a user gives it: an MLflow run id, a run name, or a Hydra output dir."""
    path = Path(ref)
    if path.is_dir():
        found = tracking.find_runs(uri, tag=("dlx.output_dir", str(path.resolve())))
    elif re.fullmatch(r"[0-9a-f]{32}", ref):
        found = [tracking.get_run(uri, ref)]
    else:
        found = tracking.find_runs(uri, name=ref)
    if not found:
        raise DlxError(f"no run {ref!r} in {uri}: pass a run id, a run name or a Hydra run dir "
                       "(see `dlx runs`)")
    return max(found, key=lambda r: r["start_time"])


def load(ref: str, uri: str, overrides: list[str] = ()) -> Loaded:
    run = find_run(ref, uri)
    if run["tags"].get("dlx.kind") == "sweep":
        raise DlxError(f"run {ref!r} is a sweep's parent: pass one of its children "
                       "(`dlx runs --best` names the best)")
    text = tracking.load_text_artifact(uri, run["run_id"], "config.yaml")
    if text is None:
        raise DlxError(f"run {run['run_id']} has no config.yaml artifact: was it made by dlx?")
    cfg = OmegaConf.create(text)
    bad = [o for o in overrides if not o.startswith("dataset.")]
    if bad:
        raise ConfigError(f"only dataset.* overrides apply to a trained run, not {', '.join(bad)}")
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    model_uri = run["tags"].get("dlx.model_uri")
    if not model_uri:
        raise DlxError(f"run {run['run_id']} has no logged model (it ran with "
                       "tracking.log_model=false or did not finish): train it again to use it")
    data = loader.load(cfg.dataset)
    transform = data.transform
    if getattr(models.build(cfg.model, data.spec), "reconstructs", False):
        data = data.for_reconstruction()
    return Loaded(run, cfg, data, _Logged(tracking.load_model(uri, model_uri)), uri, transform)


def evaluate(loaded: Loaded, split: str = "test") -> dict[str, Any]:
    """Loss and metrics on a split, recomputed with the logged model: what the run logged."""
    data = loaded.data
    part = data.test if split == "test" else data.val
    if part is None:
        raise ConfigError(f"the run has no {split} split (dataset.val_fraction=0): use --split test")
    task = data.spec.task
    scores, out = metrics.evaluate(loaded.model, *part, task, loaded.cfg.dataset.batch_size,
                                   data.transform)
    result: dict[str, Any] = {"split": split, "task": task, "n": len(part[0]),
                              "metrics": {f"{split}_{k}": v for k, v in scores.items()}}
    if data.spec.is_classification:
        report = metrics.classification_report(out, part[1], task, data.spec.class_names)
        result["metrics"][f"{split}_f1_macro"] = report["macro avg"]["f1-score"]
        result["classification_report"] = report
        result["confusion_matrix"] = metrics.confusion_matrix(out, part[1], task,
                                                              data.spec.class_names)
    return result


@torch.inference_mode()
def predict(loaded: Loaded, source: str) -> list[dict[str, Any]]:
    """Predictions for a user's inputs (a CSV, an image or folder of images, a text file), read
    and preprocessed as the run's dataset was, with the fitted objects the run logged (its
    vocabulary, its preprocessing Pipeline). One row per input: what names it (file, line, row),
    the prediction, and class probabilities."""
    cfg, spec = loaded.cfg, loaded.data.spec
    encode = loader.encoder(cfg.dataset, spec, _logged_artifacts(loaded))
    if encode is None:
        raise DataError(f"dlx predict cannot read new inputs for dataset {cfg.dataset.name}: it "
                        "reads csv, digits, image (mnist, fashion_mnist, cifar10, image_folder) "
                        "and imdb runs")
    x, ids = encode(source)
    prep = (lambda b: b) if loaded.transform is None else (lambda b: loaded.transform(b, False))
    bs = cfg.dataset.batch_size
    out = torch.cat([loaded.model(prep(x[i : i + bs])) for i in range(0, len(x), bs)])
    keys = [dict(zip(ids, values)) for values in zip(*ids.values())] if ids else [{}] * len(x)
    return [{**k, **row} for k, row in zip(keys, _rows(out, spec, prep, x))]


def _rows(out: torch.Tensor, spec, prep, x: torch.Tensor) -> list[dict[str, Any]]:
    """The model's outputs as rows: class and probabilities, a value, or a reconstruction error."""
    if spec.task == "multiclass":
        probs = out.softmax(1)
        names = spec.class_names or tuple(map(str, range(out.shape[1])))
        return [{"prediction": names[int(p.argmax())], "probability": float(p.max()),
                 **{f"p_{n}": float(v) for n, v in zip(names, p)}} for p in probs]
    if spec.task == "binary":
        names = spec.class_names or ("0", "1")
        p1 = out[:, 0].sigmoid()
        return [{"prediction": names[int(p > 0.5)], "probability": float(max(p, 1 - p)),
                 f"p_{names[1]}": float(p)} for p in p1]
    if spec.task == "regression":
        return [{"prediction": float(v[0]) if len(v) == 1 else v.tolist()} for v in out]
    return [{"reconstruction_error": float(e)} for e in (out - prep(x).flatten(1)).pow(2).mean(1)]


def _logged_artifacts(loaded: Loaded) -> dict[str, Any]:
    """The dataset's fitted artifacts as the run logged them (vocab.json, preprocessing.json),
    each falling back to the rebuilt Bundle's own (fitted on the same train rows). Pickled files
    (preprocessing.joblib) would run code when loaded, so the logged ones are used only with
    MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true; otherwise the rebuilt ones are, after checking
    that the run's logged JSON (its fitted values) matches the rebuilt Bundle's."""
    run_id, found = loaded.run["run_id"], {}
    trusted = os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "").lower() in ("true", "1")
    rebuilt_files = False
    for name, own in loaded.data.artifacts.items():
        if isinstance(own, dict):
            logged = tracking.load_json_artifact(loaded.uri, run_id, name)
        elif isinstance(own, str):
            logged = tracking.load_text_artifact(loaded.uri, run_id, name)
        elif trusted:
            logged = tracking.download_artifact(loaded.uri, run_id, name)
        else:
            logged, rebuilt_files = None, True
        found[name] = own if logged is None else logged
    if rebuilt_files:
        for name, own in loaded.data.artifacts.items():
            if isinstance(own, dict) and json.loads(json.dumps(own, default=str)) != found[name]:
                raise DataError(f"the run's logged {name} differs from the one rebuilt from its "
                                "config (a cross-validated refit, or changed training data): set "
                                "MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true to use the run's own "
                                "logged preprocessing files, if you trust its store")
    return found
