"""The MLflow store dlx writes to and reads from: opening it (one process at a time for a new
SQLite file), the experiment, retries on a locked database, and store failures as one line.

MLflow reads its environment when imported, so dlx's defaults for it are set just above the
import; a variable the user set wins.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from pathlib import Path

ENVIRONMENT = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # dlx prints its own output
    # nor MLflow's "View run at <tracking URI>" lines, which would print a URI's password
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    # an unreachable tracking server fails in ~3 s, not after MLflow's default 7 retries with
    # exponential backoff (about 4 minutes); set these yourself for a flaky server
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",  # MLflow's default: 7
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",  # seconds, doubled per retry; default 2
}
for _key, _value in ENVIRONMENT.items():
    os.environ.setdefault(_key, _value)

import mlflow  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from dlx.errors import DlxError  # noqa: E402
from dlx.tracking.redact import redact  # noqa: E402

# store set-up chatter ("Creating initial MLflow database tables...", alembic's migrations) is
# not the user's business
for _name in ("mlflow", "mlflow.store.db.utils", "mlflow.system_metrics", "alembic"):
    logging.getLogger(_name).setLevel(logging.WARNING)

__all__ = ["mlflow", "MlflowClient", "MlflowException", "client", "experiment_id", "retry",
           "store_errors"]


def client(uri: str) -> MlflowClient:
    """An MlflowClient on `uri`; a new SQLite store is created (and migrated) here, under a lock."""
    reachable(uri)
    try:
        with _store_lock(uri):  # one process at a time creates/migrates a new SQLite store
            _set_tracking_uri(uri)  # so models:/ and runs:/ URIs resolve against it too
            made = MlflowClient(uri)
            if uri.startswith("sqlite:"):
                made.search_experiments(max_results=1)  # touch it: tables exist after the lock
            return made
    except ModuleNotFoundError as e:  # SQLAlchemy's driver for a database URI
        fix = "pip install 'dlx[postgres]'" if e.name in ("psycopg", "psycopg2") \
            else f"pip install {e.name}"
        raise DlxError(f"the MLflow store {redact(uri)} needs the Python module {e.name} "
                       f"({fix})") from e
    except Exception as e:  # noqa: BLE001 - any store error is the user's URI
        raise DlxError(f"cannot open the MLflow store {redact(uri)}: {one_line(e)} "
                       "(check tracking.uri)") from e


def _set_tracking_uri(uri: str) -> None:
    """mlflow.set_tracking_uri, without the MLFLOW_TRACKING_URI it also exports: in a process
    that goes on (a notebook: dlx.load_model, then dlx.train) that variable would send the next
    run's records to this store instead of the one its config names."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}  # SQLAlchemy URIs on a server


def reachable(uri: str, timeout: float = 5.0) -> None:
    """A database server in `uri` (postgresql://...) that does not accept a connection fails here
    in seconds, in one line; MLflow itself retries creating its engine for about 100 s."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    scheme = parts.scheme.split("+")[0]
    if scheme not in DATABASE_PORTS or not parts.hostname:
        return
    where = (parts.hostname, parts.port or DATABASE_PORTS[scheme])
    try:
        socket.create_connection(where, timeout=timeout).close()
    except OSError as e:
        raise DlxError(f"cannot reach the database server of the MLflow store {redact(uri)} at "
                       f"{where[0]}:{where[1]}: {e.strerror or e} (is {scheme} running there? "
                       "check tracking.uri)") from e


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


def experiment_id(c: MlflowClient, name: str) -> str:
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return c.create_experiment(name)
    except MlflowException:  # created meanwhile by a parallel job
        return c.get_experiment_by_name(name).experiment_id


# Transient failures of a store write another process causes: SQLite's write lock, and a row
# (a dataset of log_inputs) inserted by a parallel run between MLflow's lookup and its insert;
# tried again, MLflow finds that row and reuses it.
TRANSIENT = ("locked", "UNIQUE constraint failed", "duplicate key value violates unique constraint")


def retry(fn, *args, **kwargs):
    """Call a store write, retrying while another process holds the SQLite write lock or has
    just inserted the same row."""
    for attempt in range(10):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - MlflowException or sqlalchemy OperationalError
            if not any(t in str(e) for t in TRANSIENT) or attempt == 9:
                raise
            time.sleep(0.05 * 2**attempt)


def store_errors(fn):
    """A store that fails under `fn(uri, ...)` (an unreachable server, a broken database) is one
    DlxError line naming the store, not a traceback."""

    @functools.wraps(fn)
    def wrapper(uri: str, *args, **kwargs):
        try:
            return fn(uri, *args, **kwargs)
        except MlflowException as e:
            raise DlxError(f"cannot use the MLflow store {redact(uri)}: {one_line(e)} (check "
                           "tracking.uri / --uri: is the server running?)") from e
    return wrapper


def one_line(e: Exception) -> str:
    message = e.message if isinstance(e, MlflowException) else str(e)
    return " ".join(redact(message).split())
