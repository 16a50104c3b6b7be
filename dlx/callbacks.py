"""Hydra callback that gives a multirun one parent MLflow run and nests every job under it.

The store, the experiment and the parent run are created once in `on_multirun_start`, before
any job starts (parallel jobs racing to create a new SQLite store collide). Jobs find the parent
through the DLX_SWEEP_PARENT_RUN_ID variable, which launchers' worker processes inherit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

PARENT_ENV = "DLX_SWEEP_PARENT_RUN_ID"
last_sweep: dict[str, Any] = {}  # what the CLI reports after a multirun


class SweepTracking(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        last_sweep.clear()
        if not config.tracking.enabled:
            return
        from dlx import tracking

        sweep_dir = Path(config.hydra.sweep.dir)
        overrides = list(config.hydra.overrides.task)
        self.uri = tracking.resolve_uri(config.tracking.uri)
        self.parent = tracking.start_parent(
            self.uri,
            config.tracking.experiment,
            name=f"sweep_{sweep_dir.name}",
            tags={"dlx.kind": "sweep", "dlx.output_dir": str(sweep_dir.resolve()),
                  "dlx.monitor": config.trainer.monitor},
            params={"sweep.overrides": " ".join(overrides)},
        )
        os.environ[PARENT_ENV] = self.parent
        last_sweep.update(parent_run_id=self.parent, uri=self.uri)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        parent = os.environ.pop(PARENT_ENV, None)
        if not parent:
            return
        from dlx import sweep, tracking

        key = sweep.objective_key(config.trainer.monitor, config.trainer.get("cv_folds", 0))
        mode = config.trainer.monitor_mode
        children = tracking.children(self.uri, parent)
        best = sweep.best(children, key, mode)
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = sweep.results_table(children, key, mode)
        files = [sweep.write_csv(rows, sweep_dir / "results.csv")]
        plot = sweep.plot_objective(rows, sweep.swept_params(children), key,
                                    sweep_dir / "objective.png")
        files += [plot] if plot else []
        n_failed = sum(c["status"] != "FINISHED" for c in children)
        tracking.finish_parent(self.uri, parent, key, best, len(children), n_failed, files)
        last_sweep.update(best=best, key=key, n_children=len(children), n_failed=n_failed,
                          results=str(files[0]))
