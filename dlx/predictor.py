"""Raw inputs -> predictions, the one path of `dlx predict` and of the MLflow model `dlx export`
logs (dlx/tracking/pyfunc.py): the run's dataset encoder reads the inputs with what the run fitted
on its training rows, the network scores them, each input becomes one row of `columns(spec)`.
It knows nothing of the tracking store: dlx/inference.py finds a run's network and artifacts in
it, and a served model's folder carries them (`load_served`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from dlx import models
from dlx.data import Spec, registry
from dlx.errors import DataError, DlxError

SERVED = "dlx-served/1"  # the format of a served model's folder (serving.json's "format")

# The columns of a prediction, after what names the input (file, line, row): `dlx predict`'s
# rows and a served model's answer alike
PREDICTION, PROBABILITY, RECONSTRUCTION_ERROR = "prediction", "probability", "reconstruction_error"


def probability_column(name: str) -> str:
    """The column of one class's probability: p_<class name>."""
    return f"p_{name}"


def _class_names(spec) -> tuple[str, ...]:
    if spec.task == "binary":
        return spec.class_names or ("0", "1")
    return spec.class_names or tuple(map(str, range(spec.num_outputs)))


def columns(spec) -> dict[str, str]:
    """The columns of a prediction in order, with their types (string, double, or double[] for
    several regression targets): the class and its probability then p_<class> for every class
    (binary: the positive class only), a value, or an autoencoder's reconstruction error."""
    if spec.task == "multiclass":
        return {PREDICTION: "string", PROBABILITY: "double",
                **{probability_column(n): "double" for n in _class_names(spec)}}
    if spec.task == "binary":
        return {PREDICTION: "string", PROBABILITY: "double",
                probability_column(_class_names(spec)[1]): "double"}
    if spec.task == "regression":
        return {PREDICTION: "double" if spec.num_outputs == 1 else "double[]"}
    return {RECONSTRUCTION_ERROR: "double"}


@dataclass
class Predictor:
    """Raw inputs -> predictions: the one path of `dlx predict` and of the MLflow model `dlx
    export` logs. The run's dataset encoder reads the inputs (a file, or the same inputs in
    memory) with what the run fitted on its training rows, the network scores them in batches
    of the run's batch size, and each input becomes one row of `columns(spec)`."""
    model: nn.Module
    spec: Spec
    encoder: registry.Encoder
    batch_size: int

    @torch.inference_mode()
    def answer(self, source) -> tuple[dict[str, list], list[dict[str, Any]]]:
        """({id column: values} naming each input, one row of `columns(spec)` per input)."""
        x, ids = self.encoder(source)
        if len(x) == 0:
            raise DataError("the input holds no rows: send one input per row")
        t = self.encoder.transform
        prep = (lambda b: b) if t is None else (lambda b: t(b, False))
        bs = self.batch_size
        out = torch.cat([self.model(prep(x[i : i + bs])) for i in range(0, len(x), bs)])
        return ids, _rows(out, self.spec, prep, x)

    def __call__(self, source) -> list[dict[str, Any]]:
        """`dlx predict`'s rows: what names each input, then its prediction."""
        ids, rows = self.answer(source)
        keys = [dict(zip(ids, values)) for values in zip(*ids.values())] if ids else [{}] * len(rows)
        return [{**k, **row} for k, row in zip(keys, rows)]


def predictor(cfg, spec, model: nn.Module, artifacts: dict[str, Any]) -> Predictor:
    """The Predictor of a run: its dataset config, data Spec, network and fitted artifacts."""
    encoder = registry.encoder(cfg.dataset, spec, artifacts)
    if encoder is None:
        raise DataError(f"dlx predict cannot read new inputs for dataset {cfg.dataset.name}: it "
                        "reads csv, digits, image (mnist, fashion_mnist, cifar10, image_folder), "
                        "imdb and custom runs")
    return Predictor(model, spec, encoder, cfg.dataset.batch_size)


def _rows(out: torch.Tensor, spec, prep, x: torch.Tensor) -> list[dict[str, Any]]:
    """The model's outputs as rows of `columns(spec)`."""
    if spec.task == "multiclass":
        probs = out.softmax(1)
        names = _class_names(spec)
        return [{PREDICTION: names[int(p.argmax())], PROBABILITY: float(p.max()),
                 **{probability_column(n): float(v) for n, v in zip(names, p)}} for p in probs]
    if spec.task == "binary":
        names = _class_names(spec)
        p1 = out[:, 0].sigmoid()
        return [{PREDICTION: names[int(p > 0.5)], PROBABILITY: float(max(p, 1 - p)),
                 probability_column(names[1]): float(p)} for p in p1]
    if spec.task == "regression":
        return [{PREDICTION: float(v[0]) if len(v) == 1 else v.tolist()} for v in out]
    return [{RECONSTRUCTION_ERROR: float(e)} for e in (out - prep(x)).flatten(1).pow(2).mean(1)]


def load_served(folder: Path, pickles_trusted: bool) -> Predictor:
    """The Predictor of a served model's folder (`_served_folder`): the network rebuilt from
    dlx's code and model.json (the trust rule for its `_target_` applies) with its weights read by
    torch.load(weights_only=True); the encoder from the run's dataset config and fitted
    artifacts, JSON read as data. A pickled artifact (a CSV run's preprocessing.joblib) is
    loaded, when first used, and only where the caller says pickles are trusted (dlx's pickle
    policy: dlx.tracking.pickles_trusted); else it is one line that says how."""
    folder = Path(folder)
    about = json.loads((folder / "serving.json").read_text())
    if about.get("format") != SERVED:
        raise DlxError(f"{folder} holds a served model of format {about.get('format')!r}, which "
                       f"this dlx does not read ({SERVED}): export the run again")
    model, spec = models.read(folder / "model")
    artifacts: dict[str, Any] = {}
    for name in about["fitted"]:
        path = folder / "fitted" / name
        if path.suffix == ".json":
            artifacts[name] = json.loads(path.read_text())
        elif not pickles_trusted:
            raise DlxError(f"the model's {name} is a pickle (the run's fitted preprocessing), which "
                           "runs code when loaded: set MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true "
                           "where the model is loaded, if you trust the store it came from")
        else:
            artifacts[name] = path
    return predictor(OmegaConf.create({"dataset": about["dataset"]}), spec, model, artifacts)
