"""The Python API: what `dlx train` does, from a notebook or a script.

    import dlx
    result = dlx.train("model=mlp", "trainer.epochs=5")            # `dlx train ...`: a Result
    found = dlx.sweep("optimizer.lr=0.01,0.1", "trainer.epochs=1,2")  # `dlx train -m ...`: a Sweep
    found.best.result.run_id, found.points, found.parent_run_id, found.table

The same path as the CLI (the Hydra adapter, dlx/cli/jobs.py): the same composition (conf/, and
`config_dir`'s options as `--config-dir DIR`), validation, output dirs and MLflow runs. Nothing
here prints or exits: progress lines go to `progress` if it is given (e.g. `progress=print`); a
failure is raised as a DlxError (ConfigError, DataError, TrainingError) carrying the line
`dlx train` prints; Ctrl-C (or SIGTERM) ends every run it reached KILLED and raises
dlx.Interrupted. When a call returns, its records are in the store, and the tracking writer stays
up for the next call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlx.errors import DlxError
from dlx.interrupts import Interrupted
from dlx.runtime import Result

if TYPE_CHECKING:
    from dlx.sweep.points import Outcome


@dataclass(repr=False)
class Sweep:
    """What `dlx.sweep(...)` gives back, as GridSearchCV's best_params_ / cv_results_ do."""

    points: list[Outcome]  # every point, as it ended: .overrides, .result (or .error), .objective
    best: Outcome | None  # the winner (after trainer.cv_refit=best, with its refit's Result)
    parent_run_id: str | None  # None: tracking.enabled=false
    table: list[dict[str, Any]] = field(default_factory=list)  # results.csv's rows, best first
    results_csv: Path | None = None  # on the parent run, and in the sweep dir

    @property
    def failed(self) -> list[Outcome]:
        """The points that failed or were lost (each with its `error` line)."""
        return [p for p in self.points if p.result is None]

    def __repr__(self) -> str:
        return (f"Sweep({len(self.points)} points, {len(self.failed)} failed, "
                f"best={self.best!r}, parent_run_id={self.parent_run_id!r})")

    @classmethod
    def of(cls, session) -> Sweep:
        summary = session.summary
        best = session.winner()
        if best is not None and session.refitted is not None:
            best = session.refitted
        results = summary.get("results")
        return cls(list(session.outcomes.values()), best, session.parent_run_id,
                   summary.get("table") or _table(session),
                   Path(results).resolve() if results else None)


def train(*overrides: str, config_dir: str | Path | None = None,
          progress: Callable[[str], None] | None = None) -> Result:
    """One run, as `dlx train OVERRIDES [--config-dir DIR]` trains it: its Result (test metrics,
    MLflow run id, output dir). A failure raises a DlxError with the CLI's one line."""
    flags = [o for o in overrides if str(o).startswith("-")]
    if flags:
        from dlx.errors import ConfigError

        raise ConfigError(f"dlx.train takes overrides (key=value), not {flags[0]}: a sweep is "
                          "dlx.sweep(...), a config dir config_dir=...")
    return _call(list(overrides), config_dir, progress)


def sweep(*overrides: str, config_dir: str | Path | None = None,
          progress: Callable[[str], None] | None = None) -> Sweep:
    """A sweep, as `dlx train -m OVERRIDES [--config-dir DIR]` runs it (grid, sweep=halving,
    sweep=optuna, trainer.cv_folds, the launchers): its points, its winner, the parent run and
    the results table. A point that fails does not raise: it is in `Sweep.failed`."""
    return Sweep.of(_call(["-m", *overrides], config_dir, progress))


def _call(args: list[str], config_dir, progress):
    from dlx import interrupts
    from dlx.cli import jobs
    from dlx.sweep.session import Listener
    from dlx.tracking import client

    class Lines(Listener):
        """What a call says: lines for `progress`, if given; nothing otherwise."""

        def point(self, text: str) -> None:
            if progress is not None:
                progress(text)

        def line(self, text: str) -> None:
            if progress is not None:
                progress(f"sweep: {text}")

        def epochs(self, cfg) -> list:
            from dlx.training.callbacks import Lines as EpochLines

            return [EpochLines(progress)] if progress is not None else []

    if config_dir is not None:
        args = [*args, "--config-dir", str(config_dir)]
    client.start()  # mlflow imports in the writer while this process imports torch
    with interrupts.installed(), _logging_kept():
        try:
            done = jobs.run(args, Lines())
        except KeyboardInterrupt:
            with contextlib.suppress(DlxError, KeyboardInterrupt):
                client.drain(client.DRAIN_AFTER_INTERRUPT)
            raise Interrupted(interrupts.SAID) from None
        except DlxError:
            with contextlib.suppress(DlxError):
                client.drain()  # what the failed run recorded is in the store
            raise
        client.drain()  # everything recorded before the call returns (a store failure raises)
    return done


@contextlib.contextmanager
def _logging_kept():
    """Hydra configures logging for every job (its train.log); the caller's root logger (a
    notebook's) is put back after."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for h in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(h)
            h.close()
        for h in handlers:
            if h not in root.handlers:
                root.addHandler(h)
        root.setLevel(level)


def _table(session) -> list[dict[str, Any]]:
    """The results table without a store (tracking.enabled=false): the same rows and order as
    results.csv (dlx.tracking.ranking.results_table), from the points this process saw end."""
    from dlx.config import flatten
    from dlx.tracking.ranking import objective_key, results_table

    trainer = session.config.trainer
    key = objective_key(trainer.monitor, trainer.get("cv_folds", 0))
    rows = []
    for o in session.outcomes.values():
        metrics = {**(o.result.test if o.result else {}),
                   **({key: o.objective} if o.objective is not None else {})}
        rows.append({"run_id": "", "run_name": o.point.runtime.name,
                     "status": "FINISHED" if o.result else "FAILED",
                     "params": {k: str(v) for k, v in flatten(o.point.cfg).items()},
                     "metrics": metrics, "tags": {"dlx.overrides": " ".join(o.overrides)}})
    return results_table(rows, key, trainer.monitor_mode)
