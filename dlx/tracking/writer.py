"""The tracking writer: `python -m dlx.tracking.writer`, started by dlx/tracking/client.py.

It imports mlflow and opens the store while the training process imports torch, then carries
out the messages it is sent, in order: runs, params, metrics (batched into one log_batch while
more messages are waiting), files, and the reports and figures that need scikit-learn or
matplotlib (imported here, in advance, not in the training process); a sweep's parent run is
dlx/tracking/sweeps.py's. It ignores Ctrl-C and
SIGTERM (the trainer ends the run KILLED and closes the pipe); when the pipe closes with runs
still open, the trainer died without ending them (SIGKILL): they are ended KILLED, and
`trainer.resume` continues them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from dlx.tracking import messages as m
from dlx.tracking import sweeps
from dlx.tracking.client import FrameReader, write_frame

MAX_BATCH = 1000  # metrics per log_batch (MLflow's limit)
# imported in the background as soon as the writer starts, while the trainer imports torch: the
# SQLite store's code (1 s of the first store access), and what a run's reports need
PREFETCH = ("mlflow.store.tracking.sqlalchemy_store", "dlx.plots", "sklearn.metrics")
WRITER_NICENESS = 10  # os.nice: the trainer's work first


def _now() -> int:
    return int(time.time() * 1000)


class Handler:
    """The writer's operations: one method per message type (HANDLERS, below)."""

    def __init__(self):
        from dlx.tracking import store

        self.store = store
        self.clients: dict[str, Any] = {}
        self.runs: dict[str, dict] = {}  # the trainer's run key -> {id, client, dir}
        self.metrics: dict[str, list] = {}  # run key -> metrics waiting for one log_batch
        self.tmp = Path(tempfile.mkdtemp(prefix="dlx-writer-"))
        self.uri = ""  # the store of the operation under way, for error messages
        self.broken: dict[str, str] = {}  # store -> its failure: later operations fail at once

    # -- store
    def _client(self, uri: str):
        self.uri = uri
        if uri in self.broken:  # an unreachable server is not waited for again and again
            raise _Broken(self.broken[uri])
        if uri not in self.clients:
            from dlx.tracking.outage import Tolerant

            self.clients[uri] = Tolerant(self.store.client(uri), uri)
        return self.clients[uri]

    def outage(self, uri: str, wait: float, spool: str) -> None:
        """How long a server that goes away is waited for, and where its records go after."""
        self._client(uri).tolerate(wait, spool)

    def open(self, uri: str, experiment: str) -> str:
        """Open (create, migrate) the store and the experiment before the run needs them."""
        return self.store.experiment_id(self._client(uri), experiment)

    # -- runs
    def start_run(self, key: str, uri: str, experiment: str, name: str, tags: dict,
                  params: dict, parent: str | None, start_ms: int, output_dir: str,
                  run_id: str | None = None, resume: str | None = None) -> str:
        """A new run, or with `resume` (the resumed run's dir) an existing one continued as it
        was (no new name, tags or params): `run_id`, else the run tagged with that dir (a
        checkpoint written before the run's id was known), else a new run after all."""
        from mlflow.entities import Param

        from dlx.tracking import PARENT_TAG
        from dlx.tracking.redact import redacted

        c = self._client(uri)
        if resume and not run_id:
            found = c.search_runs([self.store.experiment_id(c, experiment)], max_results=1,
                                  filter_string=f"tags.`dlx.output_dir` = '{resume}'")
            run_id = found[0].info.run_id if found else None
        continued = bool(run_id)
        if run_id:
            self.store.retry(c.update_run, run_id, "RUNNING")
        else:
            tags = {"mlflow.source.name": "dlx train", "mlflow.source.type": "LOCAL",
                    "mlflow.user": _user(), **tags, **({PARENT_TAG: parent} if parent else {})}
            run = self.store.retry(c.create_run, self.store.experiment_id(c, experiment),
                                   start_time=start_ms, tags=redacted(tags), run_name=name)
            run_id = run.info.run_id
            items = [Param(k, v) for k, v in redacted(params).items()]
            for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
                self.store.retry(c.log_batch, run_id, params=items[i : i + 100])
        self.runs[key] = {"id": run_id, "client": c, "dir": Path(output_dir), "uri": uri}
        return (run_id, continued) if resume else run_id

    def log_metrics(self, key: str, metrics: dict[str, float], step: int = 0,
                    ms: int | None = None) -> None:
        from mlflow.entities import Metric

        ms = ms or _now()
        self.metrics.setdefault(key, []).extend(
            Metric(k, float(v), ms, step) for k, v in metrics.items())

    def flush(self) -> None:
        """Write the waiting metrics, one log_batch per run."""
        for key, waiting in list(self.metrics.items()):
            run = self.runs[key]
            for i in range(0, len(waiting), MAX_BATCH):
                self.store.retry(run["client"].log_batch, run["id"], metrics=waiting[i : i + MAX_BATCH])
            del self.metrics[key]

    def inputs(self, key: str, dataset: dict, sizes: dict[str, int]) -> None:
        """The run's data in MLflow's dataset records (the UI's Dataset column), one input per
        split with its size; no data is copied."""
        import hashlib

        from mlflow.entities import Dataset, DatasetInput, InputTag

        run, items = self.runs[key], []
        source = json.dumps(dataset["source"])
        for split, n in sizes.items():
            if not n:
                continue
            profile = {"split": split, "rows": n}
            digest = hashlib.sha256(json.dumps([dataset["name"], source, profile]).encode()).hexdigest()[:8]
            items.append(DatasetInput(Dataset(dataset["name"], digest, dataset["source_type"], source,
                                              profile=json.dumps(profile)),
                                      tags=[InputTag("mlflow.data.context", split)]))
        self.store.retry(run["client"].log_inputs, run["id"], datasets=items)

    def system_metrics(self, key: str) -> None:
        """MLflow's system metrics (CPU, memory, disk, network; GPUs with nvidia-ml-py) for the
        run, sampled here every MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL seconds (2 by default)
        until it ends."""
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        run = self.runs[key]
        if run["client"].journal is not None:  # the server is away: no samples to send
            return
        run["monitor"] = SystemMetricsMonitor(run["id"], sampling_interval=2, tracking_uri=run["uri"])
        run["monitor"].start()

    @staticmethod
    def _last_sample(monitor) -> None:
        """Stop the monitor. MLflow's logs a sample only after a whole sampling interval, so a
        run shorter than that would have none: it gets the one taken at its end."""
        monitor.finish()
        if getattr(monitor, "_logging_step", 1) == 0:
            monitor.collect_metrics()
            monitor.publish_metrics(monitor.aggregate_metrics())
            monitor.mlflow_logger.flush()

    def logged_steps(self, key: str, metric: str) -> list[int]:
        run = self.runs[key]
        return sorted({x.step for x in run["client"].get_metric_history(run["id"], metric)})

    def set_tags(self, key: str, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        from dlx.tracking.redact import redacted

        run = self.runs[key]
        items = [RunTag(k, v) for k, v in redacted(tags).items()]
        self.store.retry(run["client"].log_batch, run["id"], tags=items)

    def log_files(self, key: str, files: dict[str, Any], folder: str | None = None) -> None:
        """Artifacts, under `folder` if given: name -> dict (JSON), str (text, secrets redacted)
        or bytes, or a Path to a file (which keeps its own file name) or a folder."""
        from dlx.tracking.redact import redact

        run = self.runs[key]
        for name, content in files.items():
            where = "/".join(p for p in (folder, name) if p)  # its path among the run's artifacts
            if isinstance(content, Path) and content.is_dir():
                self.store.retry(run["client"].log_artifacts, run["id"], str(content), where)
                continue
            if isinstance(content, Path):
                path = content
            else:
                path = self.tmp / run["id"] / where
                path.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, dict):
                    path.write_text(json.dumps(content, indent=2, default=str))
                elif isinstance(content, str):
                    path.write_text(redact(content))
                else:
                    path.write_bytes(content)
            parent = where.rpartition("/")[0] or None
            self.store.retry(run["client"].log_artifact, run["id"], str(path), parent)

    def figure(self, key: str, kind: str, args: tuple = ()) -> None:
        """A PNG from dlx/plots.py, saved under the run's output dir and logged under plots/."""
        from dlx import plots

        run = self.runs[key]
        folder = run["dir"] / "plots"
        folder.mkdir(parents=True, exist_ok=True)
        path = getattr(plots, kind)(*args, folder / f"{kind}.png")
        self.store.retry(run["client"].log_artifact, run["id"], str(path), "plots")

    def classification(self, key: str, target, pred, class_names, split: str = "test") -> float:
        """scikit-learn's classification report and confusion matrix of a split, logged with
        their figure; the macro F1 becomes the metric <split>_f1_macro."""
        from dlx.training import metrics

        report = metrics.classification_report(target, pred, class_names)
        cm = metrics.confusion_matrix(target, pred, class_names)
        f1 = report["macro avg"]["f1-score"]
        self.log_metrics(key, {f"{split}_f1_macro": f1})
        self.log_files(key, {"classification_report.json": report, "confusion_matrix.json": cm})
        self.figure(key, "confusion_matrix", (cm,))
        return f1

    def end_run(self, key: str, status: str, end_ms: int | None = None) -> None:
        """FINISHED, FAILED or KILLED: a run is never left RUNNING."""
        self.flush()
        run = self.runs.pop(key, None)
        if run is None:  # it never started: that failure has been reported already
            return
        if run.get("monitor"):
            with contextlib.suppress(Exception):  # a server gone away: no last sample
                self._last_sample(run["monitor"])
        self.store.retry(run["client"].set_terminated, run["id"], status, end_time=end_ms or _now())

    # -- the end
    def drain(self) -> bool:
        from dlx.tracking import outage

        self.flush()
        outage.report(self.clients.values())  # records kept in the spool: its one line, once
        return True

    def abandon(self) -> None:
        """The pipe closed with runs open: the trainer ended without ending them."""
        self.flush()
        for key in list(self.runs):
            self.set_tags(key, {"dlx.ended_by": "the tracking writer: the training process "
                                                "ended without ending the run"})
            self.end_run(key, "KILLED")


# each message type's handler: what the writer carries out for it
HANDLERS = {
    m.Open: Handler.open, m.Outage: Handler.outage, m.StartRun: Handler.start_run,
    m.LogMetrics: Handler.log_metrics, m.SetTags: Handler.set_tags, m.LogFiles: Handler.log_files,
    m.Figure: Handler.figure,
    m.Classification: Handler.classification, m.Inputs: Handler.inputs,
    m.SystemMetrics: Handler.system_metrics, m.LoggedSteps: Handler.logged_steps,
    m.EndRun: Handler.end_run, m.StartSweep: sweeps.start_sweep,
    m.FinishSweep: sweeps.finish_sweep, m.Drain: Handler.drain,
}
assert set(HANDLERS) == set(m.MESSAGES), "every message type has its handler"


def handle(handler: Handler, message: m.Message) -> Any:
    """Carry out one message (checked: one of dlx.tracking.messages' types)."""
    if type(message) not in HANDLERS:
        raise TypeError(f"the tracking writer got {type(message).__name__}, not a message of "
                        "dlx.tracking.messages")
    fields = {f.name: getattr(message, f.name) for f in dataclasses.fields(message)}
    return HANDLERS[type(message)](handler, **fields)


class _Broken(Exception):
    """A store that failed already: the same one-line message again, at once."""


def _import(modules) -> None:
    """Import (and warm up, where a module has `warm()`) what the run's reports will need."""
    import importlib

    for name in modules:
        try:
            getattr(importlib.import_module(name), "warm", lambda: None)()
        except Exception:  # noqa: BLE001 - only a head start; the real use reports problems
            pass


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        return "unknown"


def _message(e: BaseException, uri: str) -> str:
    """A failure as the one line the trainer prints."""
    from dlx.errors import DlxError

    if isinstance(e, (DlxError, _Broken)):
        return str(e)
    from dlx.tracking.redact import redact

    text = redact(" ".join(str(getattr(e, "message", e)).split()))
    if type(e).__name__ in ("MlflowException", "OperationalError", "RestException"):
        return (f"cannot use the MLflow store {redact(uri)}: {text} (check tracking.uri: is the "
                "server running?)")
    return f"{type(e).__name__}: {text}"


def _answer(out, message):
    """Answer the trainer; once it is gone (killed), keep working without answering."""
    if out is None:
        return None
    try:
        write_frame(out, message)
        return out
    except (BrokenPipeError, OSError):
        return None


def main() -> None:
    # below the trainer's priority: what the writer does while a run trains (its imports of
    # MLflow, scikit-learn and matplotlib, several CPU seconds; the system-metrics sampler) yields
    # the cores to training, and where the trainer waits for it (a run's start and end) nothing
    # else wants them
    os.nice(WRITER_NICENESS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the trainer decides how a run ends
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever a library prints goes to stderr, never into the answers
    from dlx.tracking.outage import ReadAhead

    reader = ReadAhead(FrameReader(sys.stdin.fileno()))  # never blocks the trainer
    threading.Thread(target=_import, args=(PREFETCH,), daemon=True).start()
    try:
        handler = Handler()  # imports mlflow
    except BaseException as e:  # noqa: BLE001 - report it on every message
        handler, broken = None, _message(e, "")
    while (message := reader.read()) is not None:
        seq, msg, reply = message
        try:
            if handler is None:
                raise RuntimeError(broken)
            if not isinstance(msg, m.LogMetrics):
                handler.flush()  # metrics keep their order with everything else
            if isinstance(msg, m.RunMessage) and msg.key not in handler.runs \
                    and not isinstance(msg, m.StartRun):  # that run never started: said already
                ok, value = True, None
            else:
                if isinstance(msg, m.RunMessage) and msg.key in handler.runs:
                    handler.uri = handler.runs[msg.key]["uri"]
                ok, value = True, handle(handler, msg)
        except Exception as e:  # noqa: BLE001 - the trainer decides what a failure means
            ok, value = False, _message(e, handler.uri if handler else "")
            if handler is not None and handler.uri and type(e).__name__ != "_Broken" \
                    and value.startswith("cannot use the MLflow store"):
                handler.broken[handler.uri] = value
        if reply or not ok:
            out = _answer(out, (seq, ok, value))
        if handler is not None and not reader.pending():
            try:
                handler.flush()
            except Exception as e:  # noqa: BLE001
                out = _answer(out, (0, False, _message(e, handler.uri)))
    if handler is not None:
        try:
            handler.abandon()
        except Exception:  # noqa: BLE001 - the store is gone too: nothing left to tell anyone
            pass
        shutil.rmtree(handler.tmp, ignore_errors=True)
    try:
        if out is not None:
            out.close()
    except OSError:
        pass
    os._exit(0)  # everything is in the store: skip tearing down mlflow, sklearn, matplotlib


if __name__ == "__main__":
    main()
