"""The Hydra callback that gives a multirun one parent MLflow run and nests every job under it.

The store, the experiment and the parent run are created once, before any job starts (parallel
jobs racing to create a new SQLite store collide); jobs find the parent through
DLX_SWEEP_PARENT_RUN_ID, which launchers' worker processes inherit. When the last job is done,
the tracking writer ranks the children (dlx/tracking/ranking.py) and ends the parent.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from dlx.tracking.messages import FinishSweep, StartSweep
from dlx.tracking.ranking import objective_key
from dlx.tracking.recorder import PARENT_ENV


class SweepTracking(Callback):
    """Creates the store, the experiment and the parent run once, before any job starts
    (parallel jobs racing to create a new SQLite store collide), and ranks the children when
    the last job is done. Jobs find the parent through DLX_SWEEP_PARENT_RUN_ID, which launchers'
    worker processes inherit. `last` keeps what the CLI reports after a multirun."""

    last: dict[str, Any] = {}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from dlx.sweep.launcher import lost

        SweepTracking.last = {}
        lost.clear()
        os.environ[SWEEP_PID_ENV] = str(os.getpid())
        if config.tracking.enabled and not shared_study(config):
            start_parent(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        parent = os.environ.pop(PARENT_ENV, None)
        os.environ.pop(SWEEP_PID_ENV, None)
        if not parent:
            return
        from dlx.tracking import client

        key = objective_key(config.trainer.monitor, config.trainer.get("cv_folds", 0))
        from dlx.sweep.launcher import lost

        summary = client.writer().call(FinishSweep(parent, key, config.trainer.monitor_mode,
                                                   str(Path(config.hydra.sweep.dir)),
                                                   tuple(lost.items())))
        SweepTracking.last.update(summary)
        if config.trainer.get("cv_folds", 0) > 1 and config.trainer.cv_refit == "best" \
                and summary.get("best"):  # the CLI refits the winner next (dlx.run.refit)
            from dlx.tracking import resolve_uri

            SweepTracking.last["refit"] = (summary["best"]["run_id"],
                                           resolve_uri(config.tracking.uri))


def shared_study(config: DictConfig) -> bool:
    """sweep=optuna on a storage of the user's (PostgreSQL, ...): its workers, on any machine,
    share the study and its one parent run, which the sweeper starts or takes up
    (dlx/sweep/optuna_study.py)."""
    sweeper = config.hydra.get("sweeper") or {}
    return "study_name" in sweeper and sweeper.get("storage") is not None


def start_parent(config: DictConfig, run_id: str | None = None) -> str:
    """The sweep's parent run (or `run_id`, another process's, taken up): its jobs find it
    through DLX_SWEEP_PARENT_RUN_ID."""
    from dlx.tracking import client, resolve_uri

    sweep_dir = Path(config.hydra.sweep.dir)
    overrides = " ".join(config.hydra.overrides.task)
    parent = client.writer().call(StartSweep(
        resolve_uri(config.tracking.uri), config.tracking.experiment, f"sweep_{sweep_dir.name}",
        {"dlx.kind": "sweep", "dlx.output_dir": str(sweep_dir.resolve()),
         "dlx.monitor": config.trainer.monitor},
        {"sweep.overrides": overrides}, str(sweep_dir), run_id))
    os.environ[PARENT_ENV] = parent
    SweepTracking.last = {"parent_run_id": parent}
    return parent


SWEEP_PID_ENV = "DLX_SWEEP_PID"  # the process that runs the sweep (its jobs may run elsewhere)


def in_worker() -> bool:
    """Whether this job runs in a launcher's worker process rather than the sweep's own."""
    pid = os.environ.get(SWEEP_PID_ENV)
    return pid is not None and int(pid) != os.getpid()
