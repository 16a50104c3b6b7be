"""Tracking: everything dlx records goes through here, and only this package imports mlflow.

- recorder.py: what a run records, driven by fit callbacks (no mlflow: it sends messages);
- client.py: the training process's handle on the tracking writer (no mlflow);
- messages.py: the writer's protocol, one typed message per operation (no mlflow);
- writer.py: the tracking writer, a process of its own that does all of a run's MLflow work
  (run creation, params, metrics, artifacts, reports and figures) while training goes on;
  sweeps.py: a sweep's parent run, in the writer;
- store.py: the MLflow client (store lock, retries, one-line errors);
- outage.py: a tracking server that goes away (waiting, then the spool); spool.py: its records
  and `dlx sync`;
- queries.py: reading runs back (`dlx runs`, `dlx eval`, ...) and `dlx export`;
- pyfunc.py, served_model.py: the MLflow model `dlx export` logs (a run's `dlx predict`, for
  MLflow's serving and registry);
- ranking.py: a sweep's winner, its results table and the worst objective (pure Python);
- redact.py: secrets out of what is logged and printed.
"""

from __future__ import annotations

import os
from pathlib import Path

PARENT_TAG = "mlflow.parentRunId"
ERROR_TAG = "dlx.error"  # a FAILED run's one-line error (what a sweep reports for it)
REGISTERED = "registered"  # a listed run's versions in MLflow's model registry (NAME/VERSION)


def resolve_uri(uri: str | None, start_dir: str | Path | None = None) -> str:
    """The store dlx uses: tracking.uri, else $MLFLOW_TRACKING_URI, else ./mlflow.db (sqlite)."""
    if uri:
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(start_dir or os.getcwd()).resolve() / 'mlflow.db'}"


def is_local(uri: str) -> bool:
    return uri.startswith("sqlite:")


UI = "http://127.0.0.1:5000"  # where `dlx ui` serves a local store by default


def ui_link(uri: str, experiment_id: str, run_id: str | None = None, ui: str = UI) -> str:
    """A run's page (or an experiment's runs table) in MLflow's UI, in its Model-training view:
    MLflow 3.17 opens pages in the GenAI view unless the URL asks for workflowType=machine_learning.
    A local store is served by `dlx ui` at `ui`; a tracking server by itself."""
    from dlx.tracking.redact import redact

    base = ui if is_local(uri) else redact(uri).rstrip("/")
    page = f"runs/{run_id}" if run_id else "runs"
    return f"{base}/#/experiments/{experiment_id}/{page}?workflowType=machine_learning"


def pickles_trusted() -> bool:
    """dlx's one pickle policy: a pickled file of a run (a CSV run's preprocessing.joblib, also
    as the served model of `dlx export` carries it; an MLflow model exported with --format
    pickle) runs code when loaded, so dlx loads one only when the user set
    MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true (MLflow's own default is true).
    Weights are always read with torch.load(weights_only=True)."""
    return os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "").lower() in ("true", "1")
