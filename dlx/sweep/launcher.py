"""dlx's Hydra launcher: the jobs of a sweep in this process, the points that share a training
trained together (dlx/sweep/sharing.py decides which: points that differ only in trainer.epochs,
and with hydra.launcher.fuse only in optimizer.lr) by the sweep layer's one function
(dlx/sweep/points.py, through the sweep's session). Each point is still its own Hydra job: its
output dir, .hydra/ files, callbacks and JobReturn, recorded in the order the sweeper asked for
them as its outcome comes back.

Selected by default (conf/config.yaml); `hydra.launcher.share_prefixes=false` trains every
point on its own; other launchers stay selectable: ray (dlx/sweep/ray_launcher.py, the same
grouping and function on a Ray cluster), joblib, slurm.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf, open_dict

from dlx.sweep import sharing  # (not fused: it imports torch)
from dlx.sweep.session import session_of


def compose_once(hydra_context) -> None:
    """Compose each job once: Hydra's sweeper composes every job of a batch to check it
    (validate_batch_is_legal) and the launcher composes it again; the launcher now takes a copy
    of the sweeper's. (A 27-point grid spends about 4 s composing.)"""
    loader = hydra_context.config_loader
    if getattr(loader, "_dlx_composed", None) is not None:
        return
    compose, composed = loader.load_sweep_config, {}

    def load_sweep_config(master_config, sweep_overrides):
        key = (id(master_config), tuple(sweep_overrides))
        if key in composed:  # the launcher's call, after the sweeper's check
            return composed.pop(key)
        config = compose(master_config, sweep_overrides)
        composed[key] = copy.deepcopy(config)
        return config

    loader.load_sweep_config, loader._dlx_composed = load_sweep_config, composed


def compose(hydra_context, config, job_overrides: Sequence[Sequence[str]],
            initial_job_idx: int) -> list[sharing.Job]:
    """Every job's config, numbered as the sweeper counts them, and where its files go."""
    Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    jobs = []
    for idx, overrides in enumerate(job_overrides, initial_job_idx):
        job = hydra_context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(job):
            job.hydra.job.id = job.hydra.job.num = idx
        where = os.path.join(str(OmegaConf.select(job, "hydra.sweep.dir")),
                             str(OmegaConf.select(job, "hydra.sweep.subdir")))
        jobs.append(sharing.Job(idx, list(overrides), job, Path(where).resolve()))
    getattr(hydra_context.config_loader, "_dlx_composed", {}).clear()
    return jobs


def launch(hydra_context, task_function, config, job_overrides: Sequence[Sequence[str]],
           initial_job_idx: int, share_prefixes: bool, fuse: str = "auto") -> list:
    """Every job of the batch, group by group: the group trained, then each of its jobs recorded
    with its outcome; the JobReturns in the sweeper's order."""
    from hydra.core.utils import configure_log, setup_globals

    session = session_of(task_function)
    setup_globals()
    session.progress.expect(initial_job_idx + len(job_overrides), job_overrides)
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    jobs = compose(hydra_context, config, job_overrides, initial_job_idx)
    groups, why = sharing.groups(jobs, share_prefixes, sharing.stacks(fuse, config))
    if why:
        session.listener.line(why)
    returns = {}
    for group in groups:
        session.begin(group[0].idx, group[0].overrides)
        outcomes = session.train([job.point() for job in group], str(fuse).lower())
        for i, (job, outcome) in enumerate(zip(group, outcomes)):
            if i:
                session.begin(job.idx, job.overrides)
            returns[job.idx] = record(hydra_context, job, session.record(outcome, job.idx))
        configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    return [returns[j.idx] for j in jobs]


def record(hydra_context, job: sharing.Job, objective: float | None):
    """A point's Hydra job, once its outcome is known: its .hydra/ files, Hydra's job callbacks,
    and its JobReturn with the objective the sweeper reads."""
    from hydra.core.utils import run_job

    return run_job(hydra_context=hydra_context, task_function=lambda _: objective,
                   config=job.config, job_dir_key="hydra.sweep.dir",
                   job_subdir_key="hydra.sweep.subdir")
