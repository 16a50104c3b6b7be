"""Everything dlx records goes through here: the only module that imports mlflow.

One `dlx train` = one MLflow run: flattened config as params, per-epoch metrics (step=epoch),
test metrics, the resolved config and overrides, the model, and tags that point back to the
Hydra output dir. A multirun = one parent run; each job is a child run under it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # dlx prints its own output
# nor MLflow's "View run at <tracking URI>" lines, which would print a URI's password
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
# An unreachable tracking server fails in ~3 s, not after MLflow's default 7 retries with
# exponential backoff (about 4 minutes); set these variables yourself for a flaky server.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # MLflow's default: 7
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")  # seconds, doubled per retry; default 2

import mlflow  # noqa: E402
from mlflow.entities import RunStatus  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

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
        with _store_lock(uri):  # one process at a time creates/migrates a new SQLite store
            mlflow.set_tracking_uri(uri)
            return MlflowClient(uri)  # opens (creates, migrates) a SQLite store right here
    except Exception as e:  # noqa: BLE001 - any store error is the user's URI
        raise DlxError(f"cannot open the MLflow store {redact(uri)}: {redact(str(e))} "
                       "(check tracking.uri)") from e


def _store_errors(fn):
    """A store that fails under `fn(uri, ...)` (an unreachable server, a broken database) is one
    DlxError line naming the store, not a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(uri: str, *args, **kwargs):
        try:
            return fn(uri, *args, **kwargs)
        except MlflowException as e:
            message = " ".join(redact(e.message).split())
            raise DlxError(f"cannot use the MLflow store {redact(uri)}: {message} (check "
                           "tracking.uri / --uri: is the server running?)") from e
    return wrapper


@contextlib.contextmanager
def _store_lock(uri: str):
    """An exclusive lock file beside a SQLite store while it is opened: processes that open a new
    store at once would each run MLflow's schema migration and collide (`duplicate column`)."""
    path = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else None
    if path is None or path in ("", ":memory:"):
        yield
        return
    import fcntl

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
        yield


# passwords and tokens in URLs: scheme://user:PASSWORD@host, ?token=..., Databricks dapi... tokens
_SECRETS = (
    (re.compile(r"(?P<keep>[a-zA-Z][\w+.-]*://[^/\s:@]*:)[^/\s]+(?=@)"), r"\g<keep>***"),
    (re.compile(r"(?i)(?P<keep>[?&;](?:access_)?(?:token|password|passwd|secret|api_?key|key|"
                r"sig|signature)=)[^&#\s]+"), r"\g<keep>***"),
    (re.compile(r"\bdapi[0-9a-f]{32}(-\d+)?\b"), "dapi***"),
)


def redact(text: str) -> str:
    """`text` with the secrets of any URL in it replaced by ***: what dlx logs and prints."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _redacted(values: dict[str, Any]) -> dict[str, str]:
    """Params or tags as MLflow stores them (strings, at most MAX_PARAM long), secrets redacted."""
    return {k: redact(str(v))[:MAX_PARAM] for k, v in values.items()}


class Run:
    """One tracked training run, written through the fluent API so log_model finds it."""

    def __init__(self, uri: str, experiment: str, name: str, tags: dict[str, str],
                 parent_run_id: str | None = None, run_id: str | None = None):
        """A new run, or with `run_id` that run continued (trainer.resume) as it was: its name,
        tags and params stay; `name` and `tags` are not applied."""
        client = _client(uri)
        try:
            if run_id:
                self._run = mlflow.start_run(run_id=run_id)
            else:
                exp_id = _experiment_id(client, experiment)
                self._run = mlflow.start_run(experiment_id=exp_id, run_name=name,
                                             tags=_redacted(tags), parent_run_id=parent_run_id)
        except MlflowException as e:
            what = f"continue run {run_id}" if run_id else "start a run"
            raise DlxError(f"cannot {what} in the MLflow store {redact(uri)}: "
                           f"{' '.join(redact(e.message).split())} (check tracking.uri: is the "
                           "server running?)") from e
        self.id = self._run.info.run_id
        self.name = self._run.info.run_name
        self._client = client

    def logged_steps(self, key: str) -> set[int]:
        """The steps (epochs) this run already has a value of metric `key` for."""
        return {m.step for m in self._client.get_metric_history(self.id, key)}

    def log_params(self, params: dict[str, Any]) -> None:
        mlflow.log_params(_redacted(params))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        mlflow.log_metrics(metrics, step=step)

    def log_text(self, text: str, path: str) -> None:
        mlflow.log_text(redact(text), path)

    def log_dict(self, data: dict, path: str) -> None:
        mlflow.log_dict(data, path)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        mlflow.log_artifact(str(path), folder)

    def set_tags(self, tags: dict[str, Any]) -> None:
        mlflow.set_tags(_redacted(tags))

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
@_store_errors
def start_parent(uri: str, experiment: str, name: str, tags: dict[str, str],
                 params: dict[str, Any]) -> str:
    """Create the store, the experiment and the sweep's parent run once, before jobs start."""
    client = _client(uri)
    run = client.create_run(_experiment_id(client, experiment), run_name=name, tags=_redacted(tags))
    for k, v in _redacted(params).items():
        client.log_param(run.info.run_id, k, v)
    return run.info.run_id


@_store_errors
def children(uri: str, parent_id: str) -> list[dict[str, Any]]:
    """Every child run of a sweep's parent, as plain dicts."""
    client = _client(uri)
    parent = client.get_run(parent_id)
    runs = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'",
        max_results=10_000,
    )
    return [_row(r) for r in runs]


@_store_errors
def finish_parent(uri: str, parent_id: str, key: str, best: dict[str, Any] | None,
                  n_children: int, n_failed: int, files: list[Path]) -> None:
    """Tag the parent with its best child, attach the report files, end it (never RUNNING)."""
    client = _client(uri)
    tags = {"dlx.children": str(n_children), "dlx.children_failed": str(n_failed),
            "dlx.objective": key}
    if best is not None:
        tags.update({"dlx.best_run_id": best["run_id"], "dlx.best_run_name": best["run_name"]})
        _retry(client.log_metric, parent_id, f"best_{key}", best["metrics"][key])
    for k, v in tags.items():
        _retry(client.set_tag, parent_id, k, v)
    for f in files:
        _retry(client.log_artifact, parent_id, str(f))
    status = "FINISHED" if best is not None else "FAILED"
    _retry(client.set_terminated, parent_id, status, end_time=int(time.time() * 1000))


@_store_errors
def list_runs(uri: str, experiment: str, parent_id: str | None = None,
              sort: str | None = None, ascending: bool = True, limit: int = 50) -> list[dict[str, Any]]:
    """Runs of an experiment (or the children of one sweep), sorted by a metric when given."""
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = ", ".join(e.name for e in client.search_experiments()) or "none yet"
        raise DlxError(f"no experiment {experiment!r} in {redact(uri)} (experiments: {names}): "
                       "pass --experiment NAME")
    filters = f"tags.`{PARENT_TAG}` = '{parent_id}'" if parent_id else ""
    order = [f"metrics.`{sort}` {'ASC' if ascending else 'DESC'}"] if sort else None
    runs = client.search_runs([exp.experiment_id], filter_string=filters, order_by=order,
                              max_results=limit)
    return [_row(r) for r in runs]


@_store_errors
def get_run(uri: str, run_id: str) -> dict[str, Any]:
    client = _client(uri)
    try:
        return _row(client.get_run(run_id))
    except MlflowException as e:
        if e.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise  # the store itself failed: _store_errors says so
        raise DlxError(f"no run {run_id!r} in {redact(uri)}: pass a run id from `dlx runs`") from e


def output_dir_of(uri: str, run_id: str) -> str | None:
    """The Hydra run dir a run was tagged with (dlx.output_dir); None if no such run."""
    try:
        return _client(uri).get_run(run_id).data.tags.get("dlx.output_dir")
    except MlflowException:
        return None


@_store_errors
def find_runs(uri: str, tag: tuple[str, str] | None = None, name: str | None = None,
              ) -> list[dict[str, Any]]:
    """Runs in any experiment with a tag value or a run name."""
    client = _client(uri)
    exp_ids = [e.experiment_id for e in client.search_experiments()]
    if tag:
        filters = f"tags.`{tag[0]}` = '{tag[1]}'"
    else:
        filters = f"attributes.run_name = '{name}'"
    return [_row(r) for r in client.search_runs(exp_ids, filter_string=filters, max_results=100)]


def load_text_artifact(uri: str, run_id: str, path: str) -> str | None:
    _client(uri)
    try:
        return mlflow.artifacts.load_text(f"runs:/{run_id}/{path}")
    except Exception:  # noqa: BLE001 - missing artifact
        return None


@_store_errors
def log_to_run(uri: str, run_id: str, metrics: dict[str, float], data: dict, path: str) -> None:
    """Attach results computed after the fact (`dlx eval --log`) to a finished run."""
    client = _client(uri)
    for k, v in metrics.items():
        _retry(client.log_metric, run_id, k, v)
    _retry(client.log_dict, run_id, data, path)


@_store_errors
def log_files_to_run(uri: str, run_id: str, files: list[Path], folder: str | None = None) -> None:
    client = _client(uri)
    for f in files:
        _retry(client.log_artifact, run_id, str(f), folder)


def load_json_artifact(uri: str, run_id: str, path: str) -> dict | None:
    """A JSON artifact of a run (e.g. classification_report.json), or None if it has none."""
    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{path}")
    except Exception:  # noqa: BLE001 - missing artifact
        return None


def download_artifact(uri: str, run_id: str, path: str) -> Path | None:
    """A run's artifact file copied to a fresh temp folder (e.g. preprocessing.joblib), or None."""
    import tempfile

    _client(uri)
    try:
        return Path(mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=path, dst_path=tempfile.mkdtemp(prefix="dlx-artifact-")))
    except Exception:  # noqa: BLE001 - missing artifact
        return None


def _row(r) -> dict[str, Any]:
    return {"run_id": r.info.run_id, "run_name": r.info.run_name, "status": r.info.status,
            "start_time": r.info.start_time, "end_time": r.info.end_time,
            "params": dict(r.data.params), "metrics": dict(r.data.metrics), "tags": dict(r.data.tags)}


def _retry(fn, *args, **kwargs):
    """Call a store write, retrying while another process holds the SQLite write lock."""
    for attempt in range(10):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - MlflowException or sqlalchemy OperationalError
            if "locked" not in str(e) or attempt == 9:
                raise
            time.sleep(0.05 * 2**attempt)


# ------------------------------------------------------------------------------ reading
def load_model(uri: str, model_uri: str):
    """The model a run logged, loaded back from the store at `uri`."""
    _client(uri)
    # a pickled model (tracking.model_format=pickle) would run code while loading: only with
    # MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true set by the user (MLflow's own default is true)
    trusted = os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "").lower() in ("true", "1")
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = str(trusted).lower()
    try:
        return mlflow.pytorch.load_model(model_uri)
    except MlflowException as e:
        if "using pickle is disallowed" in e.message:
            raise DlxError(f"the model {model_uri} was logged with tracking.model_format=pickle and "
                           "loading it would unpickle code: retrain with tracking.model_format=pt2 "
                           "(the default), or set MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true if you "
                           "trust the run") from e
        raise DlxError(f"cannot load the model {model_uri} from {redact(uri)}: "
                       f"{redact(e.message)}") from e


def ui_command(uri: str, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The command line (and environment) that serves MLflow's UI over `uri`: one worker and no
    GenAI job runners, which dlx does not use and which triple the start-up time."""
    import sys

    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
            "--host", host, "--port", str(port), "--workers", "1"], env


__all__ = ["Run", "RunStatus", "resolve_uri", "is_local", "start_parent", "finish_parent",
           "load_model", "ui_command", "children", "output_dir_of",
           "list_runs", "get_run", "load_json_artifact", "find_runs", "load_text_artifact", "download_artifact",
           "log_to_run", "log_files_to_run"]
