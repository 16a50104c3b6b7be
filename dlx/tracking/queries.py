"""Reading runs back, for `dlx runs`, `dlx eval`, `dlx predict`, `dlx explain`, `dlx export`
and `trainer.resume`: runs as plain dicts, their artifacts, and results attached after the fact."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from dlx.errors import DlxError
from dlx.tracking import PARENT_TAG, REGISTERED
from dlx.tracking.redact import redact
from dlx.tracking.store import MlflowClient, MlflowException, client, mlflow, retry, store_errors


def row(r) -> dict[str, Any]:
    """An MLflow run as a plain dict."""
    return {"run_id": r.info.run_id, "run_name": r.info.run_name, "status": r.info.status,
            "start_time": r.info.start_time, "end_time": r.info.end_time,
            "experiment_id": r.info.experiment_id,
            "params": dict(r.data.params), "metrics": dict(r.data.metrics), "tags": dict(r.data.tags)}


def children(c: MlflowClient, parent_id: str) -> list[dict[str, Any]]:
    """Every child run of a sweep's parent."""
    parent = c.get_run(parent_id)
    runs = c.search_runs([parent.info.experiment_id], max_results=10_000,
                         filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'")
    return [row(r) for r in runs]


@store_errors
def children_of(uri: str, parent_id: str) -> list[dict[str, Any]]:
    return children(client(uri), parent_id)


@store_errors
def list_runs(uri: str, experiment: str, parent_id: str | None = None, sort: str | None = None,
              ascending: bool = True, limit: int = 50,
              versions: bool = False) -> list[dict[str, Any]]:
    """Runs of an experiment (or the children of one sweep), sorted by a metric when given; with
    `versions`, each with its versions in the model registry (REGISTERED: [NAME/VERSION])."""
    c = client(uri)
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        names = ", ".join(e.name for e in c.search_experiments()) or "none yet"
        raise DlxError(f"no experiment {experiment!r} in {redact(uri)} (experiments: {names}): "
                       "pass --experiment NAME")
    filters = f"tags.`{PARENT_TAG}` = '{parent_id}'" if parent_id else ""
    order = [f"metrics.`{sort}` {'ASC' if ascending else 'DESC'}"] if sort else None
    runs = c.search_runs([exp.experiment_id], filter_string=filters, order_by=order,
                         max_results=limit)
    if not versions:
        return [row(r) for r in runs]
    found = registered(c, [r.info.run_id for r in runs])
    return [{**row(r), REGISTERED: found.get(r.info.run_id, [])} for r in runs]


@store_errors
def get_run(uri: str, run_id: str) -> dict[str, Any]:
    try:
        return row(client(uri).get_run(run_id))
    except MlflowException as e:
        if e.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise  # the store itself failed: store_errors says so
        raise DlxError(f"no run {run_id!r} in {redact(uri)}: pass a run id from `dlx runs`") from e


@store_errors
def find_runs(uri: str, tag: tuple[str, str] | None = None,
              name: str | None = None) -> list[dict[str, Any]]:
    """Runs in any experiment with a tag value or a run name."""
    c = client(uri)
    exp_ids = [e.experiment_id for e in c.search_experiments()]
    filters = f"tags.`{tag[0]}` = '{tag[1]}'" if tag else f"attributes.run_name = '{name}'"
    return [row(r) for r in c.search_runs(exp_ids, filter_string=filters, max_results=100)]


def output_dir_of(uri: str, run_id: str) -> str | None:
    """The Hydra run dir a run was tagged with (dlx.output_dir); None if no such run."""
    try:
        return client(uri).get_run(run_id).data.tags.get("dlx.output_dir")
    except MlflowException:
        return None


def _artifact(uri: str, read):
    """`read()` of a run's artifact, or None when the run has no such artifact."""
    client(uri)  # the store runs:/ URIs resolve against
    try:
        return read()
    except Exception:  # noqa: BLE001 - a missing artifact
        return None


def text_artifact(uri: str, run_id: str, path: str) -> str | None:
    return _artifact(uri, lambda: mlflow.artifacts.load_text(f"runs:/{run_id}/{path}"))


def json_artifact(uri: str, run_id: str, path: str) -> dict | None:
    """A JSON artifact of a run (e.g. classification_report.json), or None if it has none."""
    return _artifact(uri, lambda: mlflow.artifacts.load_dict(f"runs:/{run_id}/{path}"))


def download(uri: str, run_id: str, path: str) -> Path | None:
    """A run's artifact file or folder copied to a fresh temp folder, or None if it has none.
    Read from the run's own artifact root: MLflow 3 resolves runs:/<run>/<name> to the run's
    folder merged with a logged MLflow model of that name, if the run has one."""
    def read():
        root = client(uri).get_run(run_id).info.artifact_uri.rstrip("/")
        return Path(mlflow.artifacts.download_artifacts(
            artifact_uri=f"{root}/{path}", dst_path=tempfile.mkdtemp(prefix="dlx-artifact-")))
    return _artifact(uri, read)


@store_errors
def log_to_run(uri: str, run_id: str, metrics: dict[str, float], data: dict, path: str) -> None:
    """Attach results computed after the fact (`dlx eval --log`) to a finished run."""
    c = client(uri)
    for k, v in metrics.items():
        retry(c.log_metric, run_id, k, v)
    retry(c.log_dict, run_id, data, path)


@store_errors
def log_files_to_run(uri: str, run_id: str, files: list[Path], folder: str | None = None) -> None:
    c = client(uri)
    for f in files:
        retry(c.log_artifact, run_id, str(f), folder)


# the names of the MLflow models `dlx export` logs on a run: not "model", the run's own folder
# of weights, which MLflow 3 would merge with a logged model of that name in runs:/ downloads
SERVED, NETWORK = "served_model", "network"


@contextlib.contextmanager
def _logging_into(uri: str, run_id: str):
    """A finished run made active for mlflow's log_model (which logs into the active run), then
    given back its status and end time."""
    c = client(uri)
    before = c.get_run(run_id).info
    try:
        with mlflow.start_run(run_id=run_id):
            yield
    finally:
        retry(c.set_terminated, run_id, before.status, end_time=before.end_time)


def _requirements() -> list[str]:
    """What a loader installs for an exported model (MLflow adds itself): dlx, and torch pinned."""
    import torch

    return [f"torch=={torch.__version__.split('+')[0]}", "dlx"]


@store_errors
def export_model(uri: str, run_id: str, model, input_example, serialization_format: str,
                 register: str | None = None) -> tuple[str, tuple[str, str] | None]:
    """Log `model` to the finished run as an MLflow pytorch model (`dlx export --format pt2`),
    tag it dlx.model_uri, and leave the run's status and end time as they were; returns its
    models:/ URI and, with `register`, the (name, version) it was registered as."""
    import mlflow.pytorch

    with _logging_into(uri, run_id):
        info = mlflow.pytorch.log_model(
            model, name=NETWORK, input_example=input_example,
            serialization_format=serialization_format, pip_requirements=_requirements())
        mlflow.set_tag("dlx.model_uri", info.model_uri)
    return info.model_uri, _register(uri, run_id, info, register)


@store_errors
def export_pyfunc(uri: str, run_id: str, folder: Path, inputs: dict, outputs: dict[str, str],
                  code_paths: list[str], register: str | None = None
                  ) -> tuple[str, tuple[str, str] | None]:
    """Log the run's served model (dlx/tracking/pyfunc.py) to the finished run: the code file,
    `folder` as its artifact, the signature of `inputs` -> `outputs`, and the user's own network
    module (`code_paths`) where it is not installed; tag it dlx.model_uri and leave the run's
    status and end time as they were. Returns its models:/ URI and, with `register`, the
    (name, version) it was registered as."""
    import warnings

    from dlx.tracking import pyfunc

    with _logging_into(uri, run_id), warnings.catch_warnings():
        # the signature is the run's own (the served model does not take an input example,
        # whose validation would load the model, pickles included, into this process)
        warnings.filterwarnings("ignore", message=".*An input example was not provided",
                                category=UserWarning)
        info = mlflow.pyfunc.log_model(
            name=SERVED, python_model=str(pyfunc.CODE), artifacts={pyfunc.ARTIFACT: str(folder)},
            signature=pyfunc.signature(inputs, outputs), pip_requirements=_requirements(),
            code_paths=code_paths or None)
        mlflow.set_tag("dlx.model_uri", info.model_uri)
    return info.model_uri, _register(uri, run_id, info, register)


def _register(uri: str, run_id: str, info, name: str | None) -> tuple[str, str] | None:
    """A new version of registered model `name` (made if new) from the logged model `info`,
    linked to its run."""
    if not name:
        return None
    c = client(uri)
    try:
        c.get_registered_model(name)
    except MlflowException as e:
        if e.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        try:
            c.create_registered_model(name)
        except MlflowException as again:  # made by another process meanwhile
            if again.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    version = retry(c.create_model_version, name, info.model_uri, run_id=run_id,
                    model_id=info.model_id)
    return version.name, str(version.version)


def registered(c: MlflowClient, run_ids: list[str]) -> dict[str, list[str]]:
    """Each run's versions in MLflow's model registry, as NAME/VERSION (newest first)."""
    found: dict[str, list[str]] = {}
    if not run_ids:
        return found
    quoted = ", ".join(f"'{r}'" for r in run_ids)
    try:
        versions = c.search_model_versions(f"run_id IN ({quoted})")
    except MlflowException:  # a store without a model registry
        return found
    for v in sorted(versions, key=lambda v: -int(v.creation_timestamp or 0)):
        found.setdefault(v.run_id, []).append(f"{v.name}/{v.version}")
    return found


def experiment_id(uri: str, name: str) -> str | None:
    exp = client(uri).get_experiment_by_name(name)
    return exp.experiment_id if exp else None


def ui_command(uri: str, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The command line (and environment) that serves MLflow's UI over `uri`: one worker and no
    GenAI job runners, which dlx does not use and which triple the start-up time; without
    Starlette's deprecation warning about MLflow's server, which is not the user's business."""
    quiet = "ignore:starlette.middleware.wsgi is deprecated"
    warnings = ",".join(w for w in (os.environ.get("PYTHONWARNINGS"), quiet) if w)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "PYTHONWARNINGS": warnings}
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
            "--registry-store-uri", uri, "--host", host, "--port", str(port), "--workers", "1"], env
