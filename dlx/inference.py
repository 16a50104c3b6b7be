"""Using a finished run: find it, rebuild its network from the weights it logged (no pickled
code is run), rebuild its data from its own resolved config, then score it on a split or predict
on new inputs; or export it as an MLflow model that predicts as `dlx predict` does. `dlx eval`,
`dlx predict`, `dlx explain`, `dlx export`, `dlx.load_model` and the served model's loading."""

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
from dlx.predictor import SERVED, columns, load_served, predictor
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


@dataclass
class Loaded:
    run: dict[str, Any]
    cfg: DictConfig
    data: Bundle
    model: nn.Module
    uri: str


def load(ref: str, uri: str, overrides: list[str] = ()) -> Loaded:
    """A run with its network and its data rebuilt (`dataset.*` overrides point at moved files)."""
    run = find_run(ref, uri)
    cfg = _config(run, uri)
    bad = [o for o in overrides if not o.startswith("dataset.")]
    if bad:
        raise ConfigError(f"only dataset.* overrides apply to a trained run, not {', '.join(bad)}")
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    model = _model(run, uri)
    data = registry.load(cfg.dataset)
    if getattr(model, "reconstructs", False):
        data = data.for_reconstruction()
    if cfg.trainer.get("cv_folds", 0) > 1 and cfg.trainer.get("cv_refit", True) not in (False, "none"):
        from dlx.training.cv import refit_data

        data = refit_data(data)  # the refit's preprocessing, fitted on all of train+val
    return Loaded(run, cfg, data, model, uri)


def _config(run: dict, uri: str) -> DictConfig:
    """The run's resolved config, as it logged it (config.yaml)."""
    text = queries.text_artifact(uri, run["run_id"], "config.yaml")
    if text is None:
        raise DlxError(f"run {run['run_id']} has no config.yaml artifact: was it made by dlx?")
    return OmegaConf.create(text)


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


# ------------------------------------------------------------------------------ predict
def predict(loaded: Loaded, source: str) -> list[dict[str, Any]]:
    """Predictions for a user's inputs (a CSV, an image or folder of images, a text file), read
    and preprocessed as the run's dataset was, with the fitted objects the run logged (its
    vocabulary, its preprocessing Pipeline). One row per input: what names it (file, line, row),
    the prediction, and class probabilities."""
    return predictor(loaded.cfg, loaded.data.spec, loaded.model, _logged_artifacts(loaded))(source)


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


# ------------------------------------------------------------------------------ export
FORMATS = ("pyfunc", "pt2", "pickle")  # `dlx export --format`: the served model, the bare network


@dataclass
class Exported:
    run_id: str
    model_uri: str
    registered: tuple[str, str] | None = None  # (name, version) in MLflow's model registry


def export(ref: str, uri: str, fmt: str = "pyfunc", register: str | None = None) -> Exported:
    """`dlx export`: the run logged as an MLflow model, optionally registered as a new version of
    model `register`. `pyfunc`: the served model, which takes the run's raw inputs and answers as
    `dlx predict` does (its network, its dataset encoder and fitted artifacts, the class names);
    `pt2` / `pickle`: the bare network (mlflow.pytorch), taking the tensors the network takes."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt} is not one of {', '.join(FORMATS)}")
    run = find_run(ref, uri)
    if fmt == "pyfunc":
        import shutil
        import tempfile

        where = Path(tempfile.mkdtemp(prefix="dlx-served-"))
        try:
            folder = _served_folder(run, uri, where / "dlx")  # the model's artifacts/dlx
            try:
                served = load_served(folder, pickles_trusted=True)  # never loaded: only read
            except DataError as e:  # a dataset without a reader of new inputs
                raise DataError(f"{e}; export the run's bare network with --format pt2") from e
            model_uri, registered = queries.export_pyfunc(
                uri, run["run_id"], folder, served.encoder.inputs, columns(served.spec),
                _own_code(served.model), register)
        finally:
            shutil.rmtree(where, ignore_errors=True)
    else:
        model, spec = models.read(_model_folder(run, uri))
        # one memory format for torch.export: a channels_last copy of the weights would be
        # saved as a partial view of its storage (torch warns "No complete tensor found")
        model = model.to(memory_format=torch.contiguous_format)
        if spec.vocab_size:  # token ids, as the model reads them
            example = torch.randint(2, spec.vocab_size, (4, *spec.input_shape))
        else:
            example = torch.rand(4, *spec.input_shape)
        model_uri, registered = queries.export_model(uri, run["run_id"], model, example.numpy(),
                                                     fmt, register)
    return Exported(run["run_id"], model_uri, registered)


def _served_folder(run: dict, uri: str, where: Path) -> Path:
    """What the served model of a run carries, copied from the run into `where`: its network
    (model/: weights.pt and model.json), the fitted artifacts its dataset's encoder reads
    (fitted/: copied as files, never loaded here) and serving.json (the dataset config)."""
    import shutil

    cfg = _config(run, uri)
    shutil.copytree(_model_folder(run, uri), where / "model")
    (where / "fitted").mkdir(parents=True)
    names = []
    for name in registry.fitted(cfg.dataset.name):
        got = queries.download(uri, run["run_id"], name)
        if got is not None:
            shutil.copy(got, where / "fitted" / name)
            names.append(name)
    about = {"format": SERVED, "run_id": run["run_id"], "fitted": names,
             "dataset": OmegaConf.to_container(cfg.dataset, resolve=True),
             "load": "dlx.predictor.load_served(folder): the network from weights.pt and "
                     "model.json, the dataset's encoder from the config and fitted/"}
    (where / "serving.json").write_text(json.dumps(about, indent=2))
    return where


def _own_code(model: nn.Module) -> list[str]:
    """The user's module that defines a network of their own (model=custom), which a served
    model must import to rebuild it: the module's file (or its top package's folder), logged
    with the model, when it lies outside the Python installation; [] for dlx's networks and
    for an installed package's (which the serving environment must have installed)."""
    import sys

    from dlx.config import targets

    name = type(model).__module__
    if name.split(".")[0] == "dlx":
        return []
    top = sys.modules[name.split(".")[0]]
    path = Path(top.__file__) if getattr(top, "__file__", None) else Path(list(top.__path__)[0])
    if path.name == "__init__.py":
        path = path.parent
    return [] if targets.installed(str(path)) else [str(path)]
