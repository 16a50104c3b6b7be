"""Everything dlx records goes through here: the only module that imports mlflow.

One `dlx train` = one MLflow run: flattened config as params, per-epoch metrics (step=epoch),
test metrics, the resolved config and overrides, the model, and tags that point back to the
Hydra output dir. A multirun = one parent run; each job is a child run under it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from dlx.errors import DlxError

logging.getLogger("mlflow").setLevel(logging.WARNING)  # keep store set-up chatter off the terminal

PARENT_TAG = "mlflow.parentRunId"
MAX_PARAM = 6000  # MLflow's limit on one param value


def resolve_uri(uri: str | None, start_dir: str | Path | None = None) -> str:
    """The store dlx uses: tracking.uri, else $MLFLOW_TRACKING_URI, else ./mlflow.db (sqlite)."""
    if uri:
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(start_dir or os.getcwd()).resolve() / 'mlflow.db'}"


def is_local(uri: str) -> bool:
    return uri.startswith("sqlite:")


def _experiment_id(client: MlflowClient, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:  # created meanwhile by a parallel job
        return client.get_experiment_by_name(name).experiment_id


def _client(uri: str) -> MlflowClient:
    try:
        mlflow.set_tracking_uri(uri)
        return MlflowClient(uri)
    except Exception as e:  # noqa: BLE001 - any store error is the user's URI
        raise DlxError(f"cannot open the MLflow store {uri}: {e} (check tracking.uri)") from e


class Run:
    """One tracked training run, written through the fluent API so log_model finds it."""

    def __init__(self, uri: str, experiment: str, name: str, tags: dict[str, str],
                 parent_run_id: str | None = None):
        client = _client(uri)
        try:
            exp_id = _experiment_id(client, experiment)
            self._run = mlflow.start_run(experiment_id=exp_id, run_name=name, tags=tags,
                                         parent_run_id=parent_run_id)
        except MlflowException as e:
            raise DlxError(f"cannot start a run in the MLflow store {uri}: {e.message}") from e
        self.id = self._run.info.run_id
        self.name = self._run.info.run_name

    def log_params(self, params: dict[str, Any]) -> None:
        mlflow.log_params({k: str(v)[:MAX_PARAM] for k, v in params.items()})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        mlflow.log_metrics(metrics, step=step)

    def log_text(self, text: str, path: str) -> None:
        mlflow.log_text(text, path)

    def log_dict(self, data: dict, path: str) -> None:
        mlflow.log_dict(data, path)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        mlflow.log_artifact(str(path), folder)

    def set_tags(self, tags: dict[str, Any]) -> None:
        mlflow.set_tags(tags)

    model_format = "pt2"  # torch.export graph: loads without unpickling code; "pickle" also works

    def log_model(self, model, input_example) -> str:
        """Log the trained model; returns the URI it loads back from (models:/<id>)."""
        import torch

        info = mlflow.pytorch.log_model(
            model,
            name="model",
            input_example=input_example,
            serialization_format=self.model_format,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "dlx"],
        )
        mlflow.set_tag("dlx.model_uri", info.model_uri)
        return info.model_uri

    def end(self, status: str) -> None:
        """FINISHED, FAILED or KILLED — never left RUNNING."""
        mlflow.end_run(status)


# ------------------------------------------------------------------------------ sweeps
def start_parent(uri: str, experiment: str, name: str, tags: dict[str, str],
                 params: dict[str, Any]) -> str:
    """Create the store, the experiment and the sweep's parent run once, before jobs start."""
    client = _client(uri)
    run = client.create_run(_experiment_id(client, experiment), run_name=name, tags=tags)
    for k, v in params.items():
        client.log_param(run.info.run_id, k, str(v)[:MAX_PARAM])
    return run.info.run_id


def finish_parent(uri: str, parent_id: str, monitor: str, mode: str) -> dict[str, Any] | None:
    """Tag the parent with its best finished child by `monitor`; end it. Returns the best child."""
    client = _client(uri)
    parent = client.get_run(parent_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'",
        max_results=10_000,
    )
    scored = [r for r in children if r.info.status == "FINISHED" and monitor in r.data.metrics]
    best = None
    if scored:
        pick = min if mode == "min" else max
        best = pick(scored, key=lambda r: r.data.metrics[monitor])
        client.set_tag(parent_id, "dlx.best_run_id", best.info.run_id)
        client.set_tag(parent_id, "dlx.best_run_name", best.info.run_name)
        client.log_metric(parent_id, f"best_{monitor}", best.data.metrics[monitor])
    client.set_tag(parent_id, "dlx.children", str(len(children)))
    client.set_tag(parent_id, "dlx.children_failed",
                   str(sum(r.info.status != "FINISHED" for r in children)))
    status = "FINISHED" if scored else "FAILED"
    client.set_terminated(parent_id, status, end_time=int(time.time() * 1000))
    if best is None:
        return None
    return {"run_id": best.info.run_id, "run_name": best.info.run_name,
            "score": best.data.metrics[monitor], "n_children": len(children)}


# ------------------------------------------------------------------------------ reading
def load_model(model_uri: str):
    return mlflow.pytorch.load_model(model_uri)


def ui_command(uri: str, host: str, port: int) -> list[str]:
    """The command line that serves MLflow's UI over `uri`."""
    import sys

    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
            "--host", host, "--port", str(port)]


__all__ = ["Run", "RunStatus", "resolve_uri", "is_local", "start_parent", "finish_parent",
           "load_model", "ui_command"]
