"""The tracking writer's protocol: one dataclass per operation, sent by the training process
(dlx/tracking/client.py) and carried out by the writer (dlx/tracking/writer.py, one handler per
message type). No mlflow or torch here: both ends import it.

Each message checks its fields when it is made (`Message.__post_init__`: the annotated types of
plain fields), and the writer refuses anything that is not one of these types, so a wrong field
fails at the sender, with its name, not in the other process.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# what the fields' annotations name, as the types a value is checked against (Any: unchecked)
_TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool, "dict": dict, "list": list,
          "tuple": tuple, "Path": Path}


@dataclass(frozen=True)
class Message:
    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value, kinds = getattr(self, f.name), _allowed(f.type)
            if kinds is not None and not isinstance(value, kinds):
                raise TypeError(f"{type(self).__name__}.{f.name} must be {f.type}, got "
                                f"{type(value).__name__}")


def _allowed(annotation: str) -> tuple | None:
    kinds = []
    for part in str(annotation).split("|"):
        part = part.strip().split("[")[0]
        if part == "None":
            kinds.append(type(None))
        elif part in _TYPES:
            kind = _TYPES[part]
            kinds.extend(kind if isinstance(kind, tuple) else (kind,))
        else:
            return None  # Any, arrays, ...: not checked
    return tuple(kinds)


@dataclass(frozen=True)
class RunMessage(Message):
    """An operation on one run, named by the trainer's key for it (skipped by the writer when
    that run never started: its failure was answered already)."""

    key: str


# ------------------------------------------------------------------------------ the store
@dataclass(frozen=True)
class Open(Message):
    """Open (create, migrate) the store and the experiment; answers the experiment's id."""

    uri: str
    experiment: str


@dataclass(frozen=True)
class Outage(Message):
    """How long the server at `uri` is waited for when it stops answering (seconds), and the spool
    folder its records go to after that (dlx/tracking/outage.py)."""

    uri: str
    wait: float
    spool: str


# ------------------------------------------------------------------------------ one run
@dataclass(frozen=True)
class StartRun(RunMessage):
    """A new run (answers its id), or with `resume` (the resumed run's dir) the run `run_id` or
    the one tagged with that dir continued (answers (id, continued))."""

    uri: str
    experiment: str
    name: str
    tags: dict
    params: dict
    parent: str | None
    start_ms: int
    output_dir: str
    run_id: str | None = None
    resume: str | None = None


@dataclass(frozen=True)
class LogMetrics(RunMessage):
    metrics: dict
    step: int = 0
    ms: int | None = None


@dataclass(frozen=True)
class SetTags(RunMessage):
    tags: dict


@dataclass(frozen=True)
class LogFiles(RunMessage):
    """Artifacts: name -> dict (JSON), str (text), bytes, or a Path (a file or a folder)."""

    files: dict
    folder: str | None = None


@dataclass(frozen=True)
class Figure(RunMessage):
    """A figure from dlx/plots.py: `kind` names the function, `args` are its data."""

    kind: str
    args: tuple = ()


@dataclass(frozen=True)
class Classification(RunMessage):
    """scikit-learn's report and confusion matrix of a split, from integer class arrays."""

    target: Any
    pred: Any
    class_names: Any
    split: str = "test"


@dataclass(frozen=True)
class Inputs(RunMessage):
    """The run's dataset in MLflow's dataset records: dlx.data.registry.source() and split sizes."""

    dataset: dict
    sizes: dict


@dataclass(frozen=True)
class SystemMetrics(RunMessage):
    """Sample MLflow's system metrics for the run until it ends."""


@dataclass(frozen=True)
class LoggedSteps(RunMessage):
    """Answers the steps the run has logged `metric` at (a resumed run logs only the others)."""

    metric: str


@dataclass(frozen=True)
class EndRun(RunMessage):
    status: str  # FINISHED | FAILED | KILLED
    end_ms: int | None = None


# ------------------------------------------------------------------------------ sweeps
@dataclass(frozen=True)
class StartSweep(Message):
    """A sweep's parent run; answers its id. With `run_id`, that parent (started by another
    process: an Optuna study's workers share one) is taken up instead."""

    uri: str
    experiment: str
    name: str
    tags: dict
    params: dict
    output_dir: str
    run_id: str | None = None


@dataclass(frozen=True)
class FinishSweep(Message):
    """Rank the parent's children by `objective` (mode min|max), attach results.csv and
    objective.png from `sweep_dir`, end the parent; answers the summary."""

    parent: str
    objective: str
    mode: str
    sweep_dir: str
    lost: tuple[tuple[str, str], ...] = ()  # (output dir, why): points whose process died with
    #   its writer (a Ray worker's child processes go with it); their runs end KILLED


@dataclass(frozen=True)
class Drain(Message):
    """Answers once everything sent before it is in the store."""


MESSAGES = tuple(t for t in list(globals().values())
                 if isinstance(t, type) and issubclass(t, Message) and t not in (Message, RunMessage))
