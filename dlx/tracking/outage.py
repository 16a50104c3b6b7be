"""A tracking server that goes away: the tracking writer's MlflowClient, which waits for it and,
past the wait, keeps the records in the local spool (dlx/tracking/spool.py).

    reached, then unreachable  every write (and read) is retried with backoff, in order, for up to
                               `tracking.outage_wait` seconds from the first failure; the trainer
                               goes on meanwhile (the writer reads its messages ahead)
    still away after that      this store's writes go to the spool for the rest of the writer's
                               life (so they keep their order); reads fail with the spool's line
    never reached              a wrong tracking.uri: the one-line store error, at once

Only a store on a server is waited for (http(s)://, or a database server such as
postgresql://); a local SQLite file fails as before.
"""

from __future__ import annotations

import time
from typing import Any

from dlx.errors import DlxError
from dlx.tracking import is_local
from dlx.tracking.redact import redact
from dlx.tracking.spool import Journal

BACKOFF = (0.5, 5.0)  # seconds between tries: the first, doubled up to the second
WRITES = ("create_run", "log_batch", "log_inputs", "log_artifact", "log_artifacts",
          "update_run", "set_terminated")


def unreachable(e: BaseException) -> bool:
    """Whether `e` says the server could not be reached or is failing (5xx), rather than refusing
    a request (4xx, a bad value)."""
    from mlflow.exceptions import MlflowException, RestException

    if isinstance(e, RestException):
        return e.get_http_status_code() >= 500
    if isinstance(e, MlflowException):  # requests' failure, wrapped by MLflow's REST client
        return str(e.message).startswith("API request to")
    response = getattr(e, "response", None)  # requests.HTTPError of an artifact upload
    if response is not None and getattr(response, "status_code", 0) >= 500:
        return True
    return type(e).__name__ in ("ConnectionError", "OperationalError")  # requests, SQLAlchemy


class Tolerant:
    """An MlflowClient on `uri` (every attribute is the client's) that outlasts an outage."""

    def __init__(self, client, uri: str):
        self.client, self.uri = client, uri
        self.wait: float | None = None  # None: failures are not waited for (`tolerate` sets it)
        self.spool: str | None = None
        self.reached = False  # a call has succeeded: a failure now is an outage, not a wrong URI
        self.down_since: float | None = None
        self.journal: Journal | None = None  # the spool, once the wait ran out
        self.told = False  # the spool's line was sent to the trainer
        self.experiments: dict[str, Any] = {}  # name -> Experiment, for runs created meanwhile

    def tolerate(self, wait: float, spool: str) -> None:
        if not is_local(self.uri):
            self.wait, self.spool = wait, spool

    def __getattr__(self, name: str):
        attr = getattr(self.client, name)
        if not callable(attr):
            return attr
        return lambda *args, **kwargs: self._call(name, args, kwargs)

    def _call(self, name: str, args: tuple, kwargs: dict):
        if self.journal is None:
            try:
                result = self._with_waits(name, args, kwargs)
            except _Gone:
                self.journal = Journal(self.spool, self.uri)
            else:
                if name == "get_experiment_by_name" and result is not None:
                    self.experiments[result.name] = result
                return result
        if name in WRITES:
            return self._spooled(name, args, kwargs)
        if name == "get_experiment_by_name" and args[0] in self.experiments:
            return self.experiments[args[0]]
        raise DlxError(self.line())

    def _with_waits(self, name: str, args: tuple, kwargs: dict):
        delay = BACKOFF[0]
        while True:
            try:
                result = getattr(self.client, name)(*args, **kwargs)
            except Exception as e:
                if self.wait is None or not self.reached or not unreachable(e):
                    raise
                now = time.monotonic()
                self.down_since = self.down_since or now
                left = self.down_since + self.wait - now
                if left <= 0:
                    raise _Gone() from e
                time.sleep(min(delay, left))
                delay = min(delay * 2, BACKOFF[1])
                continue
            self.reached, self.down_since = True, None
            return result

    def _spooled(self, name: str, args: tuple, kwargs: dict):
        if name != "create_run":
            return getattr(self.journal, name)(*args, **kwargs)
        from mlflow.entities import Run, RunData, RunInfo

        experiment_id, *rest = args
        names = [n for n, e in self.experiments.items() if e.experiment_id == experiment_id]
        run_id = self.journal.create_run(names[0], *rest, **kwargs)
        return Run(RunInfo(run_id=run_id, experiment_id=experiment_id, user_id="",
                           status="RUNNING", start_time=kwargs.get("start_time"), end_time=None,
                           lifecycle_stage="active", run_name=kwargs.get("run_name")),
                   RunData())

    def line(self) -> str:
        """What happened, where the records are, and how to upload them: one line."""
        n = len(self.journal.runs)
        return (f"the tracking server {redact(self.uri)} was unreachable for more than "
                f"{self.wait:g} s (tracking.outage_wait): the records of {n} run"
                f"{'' if n == 1 else 's'} are kept in {self.journal.dir}; upload them with "
                "`dlx sync` once it is back")


class _Gone(Exception):
    """The server stayed away for the whole wait."""


def report(clients) -> None:
    """The spool's line, once per store, when records went to the spool (the writer's `drain`)."""
    for c in clients:
        if isinstance(c, Tolerant) and c.journal is not None and c.journal.runs and not c.told:
            c.told = True
            raise DlxError(c.line())


class ReadAhead:
    """The trainer's messages (a client.FrameReader), read as they come by a thread of their own:
    while the writer waits for a server, the pipe never fills, so the trainer never blocks."""

    def __init__(self, reader):
        import queue
        import threading

        self.reader, self.queue = reader, queue.SimpleQueue()
        threading.Thread(target=self._read, name="dlx-read-ahead", daemon=True).start()

    def _read(self) -> None:
        while True:
            message = self.reader.read()
            self.queue.put(message)
            if message is None:
                return

    def read(self):
        """The next message, or None at the end of the stream."""
        return self.queue.get()

    def pending(self) -> bool:
        return not self.queue.empty()
