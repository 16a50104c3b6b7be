"""Which points of a sweep share one training: the one grouping rule of dlx's launcher
(dlx/sweep/launcher.py) and the Ray launcher, each group trained by dlx/sweep/points.py (group
training: dlx/sweep/group.py):

- shared epoch prefixes: the 30-epoch point passes through the states of the 10- and 20-epoch
  points, so points that differ only in trainer.epochs are one training, the shorter ones its
  milestones: at epoch 10 the 10-epoch point gets what a separate run of it records (its own
  MLflow child run and output dir, params, per-epoch metrics up to its epoch, checkpoints, test
  metrics, report and model), taken from a copy of the model under torch.random.fork_rng, so the
  epochs after it train exactly as if nothing had happened. It is exact only when nothing reads
  the total epoch count: not with a schedule whose shape depends on trainer.epochs (cosine,
  onecycle), nor where `trainer.capture=auto` decides from the run's length (CUDA). Early
  stopping decides from past epochs only: a point it stops before its milestone ends where the
  shared training ended, as a separate run would.
- stacked lrs: points that differ only in optimizer.lr are one network each, trained as K
  stacked copies when `hydra.launcher.fuse` says so (dlx/sweep/fused.py).
- cross-validation (trainer.cv_folds): points that differ in trainer.epochs, optimizer.lr and
  dataset.batch_size are one group: a network per (lr, batch size), each fold of each trained
  once and scored at each point's epoch (dlx/sweep/cv.py), all the group's folds spread over
  worker processes (one queue, so no worker waits for another's last fold between groups).

Torch-free, except to ask whether CUDA is there for fuse=auto.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, open_dict

from dlx.runtime import Point, Runtime

EPOCHS, LR, BATCH = "trainer.epochs=", "optimizer.lr=", "dataset.batch_size="


@dataclass
class Job:
    """One job of a sweep: its overrides, its composed config (with Hydra's node) and where its
    files go."""

    idx: int
    overrides: list[str]
    config: DictConfig
    output_dir: Path

    @property
    def epochs(self) -> int:
        return int(self.config.trainer.epochs)

    def point(self) -> Point:
        """What the sweep layer trains for this job: the task's config, as Hydra hands it to
        the job (without the hydra node), and its runtime."""
        task = copy.deepcopy(self.config)
        with open_dict(task):
            del task["hydra"]
        return Point(task, Runtime.of(self.config.hydra, self.output_dir))


def unshareable(config: DictConfig) -> str | None:
    """Why the points of this sweep cannot share epoch prefixes, or None when they can."""
    from dlx.config.validate import schema_of

    scheduler = schema_of(config.get("scheduler"))
    if scheduler is not None and scheduler.READS_EPOCHS:
        return f"scheduler={config.scheduler.name} reads trainer.epochs (its lr depends on the length)"
    return alone(config) or (
        "trainer.capture=auto decides from a run's length on CUDA (set it true or false)"
        if str(config.trainer.capture).lower() == "auto" and _on_cuda(config) else None)


def alone(config: DictConfig) -> str | None:
    """Why every point of this sweep trains on its own (no sharing of any kind), or None."""
    if config.trainer.resume:
        return "trainer.resume continues one run"
    return None


def stacks(fuse: str, config: DictConfig) -> bool:
    """Whether points that differ only in optimizer.lr go to one training: fuse=true, or auto on
    CUDA (where `fused.check` then decides from the network and a timing probe), and always
    with trainer.cv_folds (the folds of all their networks then train in parallel workers)."""
    fuse = str(fuse).lower()
    return alone(config) is None and (fuse == "true" or (fuse == "auto" and _on_cuda(config))
                                      or config.trainer.cv_folds > 1)


def _on_cuda(config: DictConfig) -> bool:
    device = str(config.trainer.device)
    if device == "auto":
        import torch

        return torch.cuda.is_available()
    return device.startswith("cuda")


def groups(jobs: list[Job], share_prefixes: bool, lrs: bool) -> tuple[list[list[Job]], str | None]:
    """The jobs grouped by everything but trainer.epochs (and with `lrs` optimizer.lr, and
    cross-validated dataset.batch_size too), in job order, and why jobs that differ only in
    trainer.epochs were not grouped (None when they were, or there were none)."""
    def rest(job: Job, skip: tuple[str, ...]) -> tuple:
        return tuple(o for o in job.overrides if not o.lstrip("+").startswith(skip))

    by_epochs: dict[tuple, set[int]] = {}
    for j in jobs:
        by_epochs.setdefault(rest(j, (EPOCHS,)), set()).add(j.epochs)
    why = None
    if any(len(e) > 1 for e in by_epochs.values()):
        if not share_prefixes:
            why = "epoch prefixes are not shared: hydra.launcher.share_prefixes=false"
        elif reason := unshareable(jobs[0].config):
            why = f"epoch prefixes are not shared: {reason}"
    skip = (*(() if why or not share_prefixes else (EPOCHS,)), *((LR,) if lrs else ()),
            *((BATCH,) if lrs and jobs[0].config.trainer.cv_folds > 1 else ()))
    if not skip:
        return [[j] for j in jobs], why
    by_rest: dict[tuple, list[Job]] = {}
    for j in jobs:
        by_rest.setdefault(rest(j, skip), []).append(j)
    out = []
    for g in by_rest.values():
        kinds = {(j.epochs, str(j.config.optimizer.lr), j.config.dataset.batch_size) for j in g}
        if len(kinds) < len(g):  # a repeated point: each trains on its own
            out += [[j] for j in g]
        else:
            out.append(g)
    return sorted(out, key=lambda g: g[0].idx), why
