"""What a run knows of how it was started, and what it gives back, without torch or Hydra at
import:

- `Runtime`: the part of Hydra's runtime a run reads (its output dir, whether it is a sweep job
  and which parent run it nests under, the overrides and group choices it was composed from, the
  launcher's parallel jobs, and what a halving or Optuna sweeper told the job).
  `dlx.run.train(cfg, runtime)` takes it as an argument; dlx's Hydra task (dlx/cli/jobs.py)
  builds it with `Runtime.of(HydraConfig.get())`, a launcher with `Runtime.of(job.hydra)`, tests
  and benchmarks with `dlx.config.compose(overrides)`.
- `Point`: a config and its Runtime, one run to train; `Result`: what a finished run gives back.
- torchrun's environment: `world_size()`, `launched()`, `rank()` (the CLI and config checks read
  them before torch is imported).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


# ------------------------------------------------------------------------ torchrun's environment
def world_size() -> int:
    """Processes training this run: torchrun's WORLD_SIZE (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched() -> bool:
    """True in a process started by torchrun with more than one rank."""
    return world_size() > 1


def rank() -> int:
    """This process's rank under torchrun (0 otherwise): only rank 0 prints and tracks."""
    return int(os.environ.get("RANK", "0")) if launched() else 0


# ------------------------------------------------------------------------------ Hydra's runtime
@dataclass(frozen=True)
class Trial:
    """sweep=optuna: the study and trial number the sweeper gave this job."""

    number: int
    study_name: str
    storage: str | None  # None: the journal file in the sweep dir
    sweep_dir: str
    pruner: Any = None  # the pruner's config ({_target_: ...}), or None


@dataclass(frozen=True)
class Runtime:
    """How one run (one Hydra job) was started: what `train` reads instead of Hydra's globals."""

    output_dir: Path
    sweep: bool = False  # a job of a multirun (`dlx train -m`)
    parent: str | None = None  # the sweep's parent MLflow run, which this run nests under
    overrides: tuple[str, ...] = ()  # the job's overrides, as typed (Hydra's overrides.task)
    choices: dict[str, Any] = field(default_factory=dict)  # config group -> the option chosen
    n_jobs: int | None = None  # jobs the launcher runs at once (threads per job follow from it)
    rung: int | None = None  # sweep=halving: the rung this candidate runs
    trial: Trial | None = None  # sweep=optuna: the trial this job is
    refit: bool = False  # trainer.cv_refit=best: a cross-validated sweep's winner, trained again
    #   on all of train+val
    run_id: str | None = None  # the MLflow run this one records into when it exists already (the
    #   refit winner's own run)
    started: float = field(default_factory=time.time)

    @property
    def name(self) -> str:
        """The run's name: its output dir's name (a sweep job's: the sweep's, then its number)."""
        d = self.output_dir
        return f"{d.parent.name}_{d.name}" if self.sweep else d.name

    @classmethod
    def of(cls, hydra, output_dir: str | Path | None = None, parent: str | None = None) -> Runtime:
        """From Hydra's config node of a job (`HydraConfig.get()`, or a composed job's `hydra`
        with the `output_dir` a launcher gives it); `parent`: its sweep's parent run."""
        from hydra.types import RunMode
        from omegaconf import OmegaConf

        sweep = hydra.mode in (RunMode.MULTIRUN, "MULTIRUN")
        sweeper = hydra.get("sweeper") or {}
        trial = None
        if sweep and sweeper.get("trial") is not None:
            pruner = sweeper.get("pruner")
            trial = Trial(int(sweeper.trial), str(sweeper.study_name), sweeper.get("storage"),
                          str(hydra.sweep.dir),
                          OmegaConf.to_container(pruner, resolve=True) if pruner else None)
        n_jobs = hydra.launcher.get("n_jobs") if sweep else None
        return cls(
            output_dir=Path(output_dir if output_dir is not None else hydra.runtime.output_dir),
            sweep=sweep,
            parent=parent if sweep else None,
            overrides=tuple(hydra.overrides.task),
            choices=dict(OmegaConf.to_container(hydra.runtime.choices, resolve=True)),
            n_jobs=int(n_jobs) if n_jobs is not None else None,
            rung=sweeper.get("rung") if sweep else None,
            trial=trial,
        )


@dataclass
class Point:
    """One run to train: its config (the task's, without Hydra's node) and how it was started.
    The sweep layer trains the points that share one training together (dlx/sweep/points.py)."""

    cfg: Any  # DictConfig
    runtime: Runtime

    @property
    def epochs(self) -> int:
        return int(self.cfg.trainer.epochs)


@dataclass
class Result:
    """What a finished run gives back (`dlx.train`, `dlx.run.train`, each point of a sweep)."""

    objective: float | None  # the monitored validation metric of the final model (cross-validated:
    #   the folds' mean): what a sweep ranks by
    test: dict[str, float]  # test_<metric> (empty for a cross-validated point that was not refit)
    epochs: int
    output_dir: str  # the Hydra run dir: checkpoints, plots, model, .hydra/
    run_id: str | None = None  # None: tracking was off
    run_name: str | None = None
    link: str | None = None  # the run's page in MLflow's UI
