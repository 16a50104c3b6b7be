"""Using a finished run: find it, rebuild its network from the weights it logged (no pickled
code is run), rebuild its data from its own resolved config, then score it on a split or predict
on new inputs. `dlx eval`, `dlx predict`, `dlx explain`, `dlx export` and `dlx.load_model`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from dlx import models
from dlx.data import Bundle, registry
from dlx.errors import ConfigError, DataError, DlxError
from dlx.tracking import pickles_trusted, queries, resolve_uri
from dlx.tracking.recorder import SCORES_ONLY
from dlx.training import evaluation, metrics


def find_run(ref: str, uri: str) -> dict[str, Any]:
    """RUN as a user gives it: an MLflow run id, a run name, or a Hydra output dir."""
    path = Path(ref)
    if path.is_dir():
        found = queries.find_runs(uri, tag=("dlx.output_dir", str(path.resolve())))
    elif re.fullmatch(r"[0-9a-f]{32}", ref):
        found = [queries.get_run(uri, ref)]
    else:
        found = queries.find_runs(uri, name=ref)
    if not found:
        raise DlxError(f"no run {ref!r} in {uri}: pass a run id, a run name or a Hydra run dir "
                       "(see `dlx runs`)")
    run = max(found, key=lambda r: r["start_time"])
    if run["tags"].get("dlx.kind") == "sweep":
        raise DlxError(f"run {ref!r} is a sweep's parent: pass one of its children "
                       "(`dlx runs --best` names the best)")
    return run


def load_model(run: str, uri: str | None = None) -> nn.Module:
    """The trained network of a dlx run (run id, run name or output dir), in eval mode on the
    CPU: `dlx.load_model(RUN)` is dlx's `mlflow.pytorch.load_model`. It rebuilds the network
    from dlx's code and the run's model config, then reads its weights with
    torch.load(weights_only=True)."""
    uri = resolve_uri(uri)
    return _model(find_run(run, uri), uri)


def _model(run: dict, uri: str) -> nn.Module:
    return models.load(_model_folder(run, uri))


def _model_folder(run: dict, uri: str) -> Path:
    if run["tags"].get(SCORES_ONLY) == "true":
        raise DlxError(f"run {run['run_id']} holds cross-validation scores only, no model: "
                       "trainer.cv_refit=best refits only a sweep's winner (dlx runs --best); "
                       "train with trainer.cv_refit=all to refit every point")
    weights = run["tags"].get("dlx.weights")
    folder = queries.download(uri, run["run_id"], str(Path(weights).parent)) if weights else None
    if folder is None:
        raise DlxError(f"run {run['run_id']} has no logged model (it ran with "
                       "tracking.log_model=false or did not finish): train it again to use it")
    return folder


def export(ref: str, uri: str, serialization_format: str = "pt2") -> tuple[str, str]:
    """`dlx export`: the run's network logged as an MLflow model; (its models:/ URI, run id)."""
    run = find_run(ref, uri)
    model, spec = models.read(_model_folder(run, uri))
    if spec.vocab_size:  # token ids, as the model reads them
        example = torch.randint(2, spec.vocab_size, (4, *spec.input_shape))
    else:
        example = torch.rand(4, *spec.input_shape)
    return queries.export_model(uri, run["run_id"], model, example.numpy(),
                                serialization_format), run["run_id"]


@dataclass
class Loaded:
    run: dict[str, Any]
    cfg: DictConfig
    data: Bundle
    model: nn.Module
    uri: str
    transform: Any = None  # the dataset's per-batch transform (uint8 images -> floats), kept for
    #   predict: an autoencoder's reconstruction Bundle has none, its splits being transformed


def load(ref: str, uri: str, overrides: list[str] = ()) -> Loaded:
    """A run with its network and its data rebuilt (`dataset.*` overrides point at moved files)."""
    run = find_run(ref, uri)
    text = queries.text_artifact(uri, run["run_id"], "config.yaml")
    if text is None:
        raise DlxError(f"run {run['run_id']} has no config.yaml artifact: was it made by dlx?")
    cfg = OmegaConf.create(text)
    bad = [o for o in overrides if not o.startswith("dataset.")]
    if bad:
        raise ConfigError(f"only dataset.* overrides apply to a trained run, not {', '.join(bad)}")
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    model = _model(run, uri)
    data = registry.load(cfg.dataset)
    transform = data.transform
    if getattr(model, "reconstructs", False):
        data = data.for_reconstruction()
    if cfg.trainer.get("cv_folds", 0) > 1 and cfg.trainer.get("cv_refit", True) not in (False, "none"):
        from dlx.training.cv import refit_data

        data = refit_data(data)  # the refit's preprocessing, fitted on all of train+val
    return Loaded(run, cfg, data, model, uri, transform)


def evaluate(loaded: Loaded, split: str = "test") -> dict[str, Any]:
    """Loss and metrics on a split, recomputed with the logged model: what the run logged."""
    data = loaded.data
    part = data.test if split == "test" else data.val
    if part is None:
        raise ConfigError(f"the run has no {split} split (dataset.val_fraction=0): use --split test")
    scores = evaluation.score(loaded.model, part, data.spec.task, loaded.cfg.dataset.batch_size,
                              data.transform, name=split)
    result: dict[str, Any] = {"split": split, "task": data.spec.task, "n": len(part[0]),
                              "metrics": scores.metrics}
    if scores.target is not None:
        names = data.spec.class_names
        report = metrics.classification_report(scores.target, scores.pred, names)
        result["metrics"][f"{split}_f1_macro"] = report["macro avg"]["f1-score"]
        result["classification_report"] = report
        result["confusion_matrix"] = metrics.confusion_matrix(scores.target, scores.pred, names)
    return result


@torch.inference_mode()
def predict(loaded: Loaded, source: str) -> list[dict[str, Any]]:
    """Predictions for a user's inputs (a CSV, an image or folder of images, a text file), read
    and preprocessed as the run's dataset was, with the fitted objects the run logged (its
    vocabulary, its preprocessing Pipeline). One row per input: what names it (file, line, row),
    the prediction, and class probabilities."""
    cfg, spec = loaded.cfg, loaded.data.spec
    encode = registry.encoder(cfg.dataset, spec, _logged_artifacts(loaded))
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
    return [{"reconstruction_error": float(e)} for e in (out - prep(x)).flatten(1).pow(2).mean(1)]


def _logged_artifacts(loaded: Loaded) -> dict[str, Any]:
    """The dataset's fitted artifacts as the run logged them (vocab.json, preprocessing.json),
    each falling back to the rebuilt Bundle's own (fitted on the same train rows). Pickled files
    (preprocessing.joblib) would run code when loaded, so the logged ones are used only when
    pickles are trusted (dlx/tracking/__init__.py); otherwise the rebuilt ones are, after checking
    that the run's logged JSON (its fitted values) matches the rebuilt Bundle's."""
    run_id, found, trusted = loaded.run["run_id"], {}, pickles_trusted()
    rebuilt_files = False
    for name, own in loaded.data.artifacts.items():
        if isinstance(own, dict):
            logged = queries.json_artifact(loaded.uri, run_id, name)
        elif isinstance(own, str):
            logged = queries.text_artifact(loaded.uri, run_id, name)
        elif trusted:
            logged = queries.download(loaded.uri, run_id, name)
        else:
            logged, rebuilt_files = None, True
        found[name] = own if logged is None else logged
    if rebuilt_files:
        for name, own in loaded.data.artifacts.items():
            if isinstance(own, dict) and json.loads(json.dumps(own, default=str)) != found[name]:
                raise DataError(f"the run's logged {name} differs from the one rebuilt from its "
                                "config (changed training data?): set "
                                "MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true to use the run's own "
                                "logged preprocessing files, if you trust its store")
    return found
