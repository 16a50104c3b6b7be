"""The local spool: where the tracking writer keeps a run's records when its tracking server
stays away longer than `tracking.outage_wait`, and how `dlx sync` uploads them, exactly once.

One journal per writer process and store, a folder under `tracking.spool` (./.dlx-spool):

    <YYYYmmdd-HHMMSS>-<pid>/
        store.json   {"uri": the store the records are for, "started": epoch seconds}
        ops.jsonl    one MLflow write per line, in the order the writer meant to do them
                     (create_run, log_batch, log_inputs, log_artifact(s), update_run,
                     set_terminated); each line is flushed and fsynced before the next
        files/N/     copies of the files and folders the writes upload
        synced       how many lines of ops.jsonl are on the server (replaced atomically)
        lock         held (flock) by the writer while it writes, and by `dlx sync` while it
                     uploads: a journal is never uploaded twice at once, nor while written

Exactly once: `synced` is advanced after each upload, so an interrupted sync resumes at the first
line not yet marked. The one line it may repeat is harmless: a run created during the outage is
tagged `dlx.spool_id` (the id the trainer was given) and found again by that tag instead of being
created twice; metrics are replayed with their recorded timestamps, which MLflow's store keeps
once (its primary key); params, tags, artifacts and statuses are the same values written again.
A journal fully uploaded is deleted. Runs it leaves open (a writer killed outright) end KILLED.

The trainer's side (`pending`) needs no mlflow; writing and uploading import it when used.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from dlx import durable
from dlx.errors import DlxError

SPOOL_TAG = "dlx.spool_id"  # a run created during an outage: the id the trainer was given
LOCAL_PREFIX = "spooled-"  # ... which starts with this


# ---------------------------------------------------------------- reading (no mlflow)
def journals(root: str | Path) -> list[Path]:
    """The journals under a spool folder, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "store.json").is_file())


def store_of(journal: Path) -> str:
    return json.loads((journal / "store.json").read_text())["uri"]


def pending(root: str | Path, uri: str | None = None) -> list[Path]:
    """The journals not yet uploaded (to `uri`, if given)."""
    return [j for j in journals(root) if uri is None or store_of(j) == uri]


@contextlib.contextmanager
def _locked(journal: Path, wait: bool):
    """The journal's lock, held for the block; None when another process holds it."""
    with open(journal / "lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield None
            return
        yield f


def _durable(path: Path, text: str) -> None:
    """Replace `path` with `text`, so that a crash leaves the old or the new content."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    durable.replace(tmp, path)


# ---------------------------------------------------------------- writing (the tracking writer)
class Journal:
    """The spool of one writer process for one store; locked until the process ends."""

    def __init__(self, root: str | Path, uri: str):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.dir = Path(root).resolve() / f"{stamp}-{os.getpid()}"
        (self.dir / "files").mkdir(parents=True)
        self._lock = open(self.dir / "lock", "a")
        fcntl.flock(self._lock, fcntl.LOCK_EX)  # released when the writer process ends
        self.runs: set[str] = set()  # the runs it holds records of
        self._files = 0
        self._ops = open(self.dir / "ops.jsonl", "a")
        _durable(self.dir / "store.json", json.dumps({"uri": uri, "started": time.time()}))

    def add(self, op: str, run: str, **fields: Any) -> None:
        self.runs.add(run)
        self._ops.write(json.dumps({"op": op, "run": run, **fields}) + "\n")
        self._ops.flush()
        os.fsync(self._ops.fileno())

    def keep(self, path: str | Path) -> str:
        """A copy of a file or folder the writes upload (the original may be temporary)."""
        self._files += 1
        path = Path(path)
        where = self.dir / "files" / str(self._files)
        if path.is_dir():
            shutil.copytree(path, where)
            return str(where.relative_to(self.dir))
        where.mkdir()
        shutil.copy2(path, where / path.name)
        return str((where / path.name).relative_to(self.dir))

    # MlflowClient's writes, as journal lines
    def create_run(self, experiment: str, start_time=None, tags=None, run_name=None) -> str:
        run = LOCAL_PREFIX + uuid.uuid4().hex
        self.add("create_run", run, experiment=experiment, start_time=start_time,
                 tags={**(tags or {}), SPOOL_TAG: run}, run_name=run_name)
        return run

    def log_batch(self, run_id, metrics=(), params=(), tags=(), synchronous=None) -> None:
        self.add("log_batch", run_id,
                 metrics=[[m.key, m.value, m.timestamp, m.step] for m in metrics],
                 params=[[p.key, p.value] for p in params], tags=[[t.key, t.value] for t in tags])

    def log_inputs(self, run_id, datasets=None, models=None) -> None:
        from google.protobuf.json_format import MessageToDict

        self.add("log_inputs", run_id, datasets=[MessageToDict(d.to_proto()) for d in datasets or ()])

    def log_artifact(self, run_id, local_path, artifact_path=None) -> None:
        self.add("log_artifact", run_id, path=self.keep(local_path), artifact_path=artifact_path)

    def log_artifacts(self, run_id, local_dir, artifact_path=None) -> None:
        self.add("log_artifacts", run_id, path=self.keep(local_dir), artifact_path=artifact_path)

    def update_run(self, run_id, status=None, name=None) -> None:
        self.add("update_run", run_id, status=status, name=name)

    def set_terminated(self, run_id, status=None, end_time=None) -> None:
        self.add("set_terminated", run_id, status=status or "FINISHED", end_time=end_time)


# ---------------------------------------------------------------- uploading (`dlx sync`)
def sync(root: str | Path, uri: str | None = None) -> dict:
    """Upload every journal under `root` to its store (or to `uri`), each exactly once.
    Returns {"runs", "ops", "journals", "busy"} (busy: journals a running dlx still writes)."""
    done = {"runs": 0, "ops": 0, "journals": 0, "busy": 0, "stores": set()}
    for journal in journals(root):
        with _locked(journal, wait=False) as held:
            if held is None:
                done["busy"] += 1
                continue
            target = uri or store_of(journal)
            try:
                runs, ops = _upload(journal, target)
            except DlxError:
                raise
            except Exception as e:  # noqa: BLE001 - the server (or the store behind it) failed
                from dlx.tracking.redact import redact
                from dlx.tracking.store import one_line

                raise DlxError(f"cannot upload {journal} to {redact(target)}: {one_line(e)} (is "
                               "the server running? `dlx sync` again goes on where this stopped)") from e
            shutil.rmtree(journal)
        done["runs"] += runs
        done["ops"] += ops
        done["journals"] += 1
        done["stores"].add(target)
    done["stores"] = sorted(done["stores"])
    return done


def _upload(journal: Path, uri: str) -> tuple[int, int]:
    """One journal's lines from the first not yet marked synced; (runs, lines uploaded)."""
    from mlflow.entities import DatasetInput, Metric, Param, RunTag
    from mlflow.protos.service_pb2 import DatasetInput as DatasetInputProto
    from google.protobuf.json_format import ParseDict

    from dlx.tracking import store

    c = store.client(uri)
    marked = journal / "synced"
    start = int(marked.read_text()) if marked.exists() else 0
    ids: dict[str, str] = {}  # a run created during the outage -> its id on the server
    open_runs: dict[str, bool] = {}  # run -> ended
    lines = (journal / "ops.jsonl").read_text().splitlines()
    uploaded = 0
    for i, line in enumerate(lines):
        try:
            op = json.loads(line)
        except json.JSONDecodeError:  # the last line of a writer killed while writing it
            break
        run = op["run"]
        if op["op"] == "create_run":  # done or not, its id on the server is needed
            ids[run] = _created(c, op, i >= start, ids)
            open_runs[run] = False
        run_id = ids.get(run, run)
        open_runs.setdefault(run, False)
        if op["op"] == "set_terminated":
            open_runs[run] = True
        elif op["op"] == "update_run" and op["status"] == "RUNNING":
            open_runs[run] = False
        if i < start or op["op"] == "create_run":
            if i >= start:
                _durable(marked, str(i + 1))
                uploaded += 1
            continue
        if op["op"] == "log_batch":
            store.retry(c.log_batch, run_id,
                        metrics=[Metric(k, v, ts, step) for k, v, ts, step in op["metrics"]],
                        params=[Param(k, v) for k, v in op["params"]],
                        tags=[RunTag(k, _mapped(v, ids)) for k, v in op["tags"]])
        elif op["op"] == "log_inputs":
            store.retry(c.log_inputs, run_id, datasets=[
                DatasetInput.from_proto(ParseDict(d, DatasetInputProto())) for d in op["datasets"]])
        elif op["op"] == "log_artifact":
            store.retry(c.log_artifact, run_id, str(journal / op["path"]), op["artifact_path"])
        elif op["op"] == "log_artifacts":
            store.retry(c.log_artifacts, run_id, str(journal / op["path"]), op["artifact_path"])
        elif op["op"] == "update_run":
            store.retry(c.update_run, run_id, op["status"], op["name"])
        elif op["op"] == "set_terminated":
            store.retry(c.set_terminated, run_id, op["status"], end_time=op["end_time"])
        _durable(marked, str(i + 1))
        uploaded += 1
    for run, ended in open_runs.items():  # never RUNNING on the server once synced
        if not ended:
            store.retry(c.set_terminated, ids.get(run, run), "KILLED")
    return len(open_runs), uploaded


def _created(c, op: dict, create: bool, ids: dict[str, str]) -> str:
    """The server's id of a run created during the outage: found by its spool tag (created by an
    earlier, interrupted sync), else created now."""
    from dlx.tracking import store

    exp = store.experiment_id(c, op["experiment"])
    found = c.search_runs([exp], filter_string=f"tags.`{SPOOL_TAG}` = '{op['run']}'", max_results=1)
    if found:
        return found[0].info.run_id
    if not create:  # marked synced, yet not on this store: it was uploaded elsewhere
        raise DlxError(f"run {op['run']} was synced already, but not to this store")
    tags = {k: _mapped(v, ids) for k, v in op["tags"].items()}
    return store.retry(c.create_run, exp, start_time=op["start_time"], tags=tags,
                       run_name=op["run_name"]).info.run_id


def _mapped(value: str, ids: dict[str, str]) -> str:
    """A tag value naming a run created during the outage (a sweep child's parent) names its
    server id instead."""
    return ids.get(value, value) if isinstance(value, str) else value
