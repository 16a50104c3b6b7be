"""dlx's Hydra launcher: the jobs of a sweep in this process, one after the other (as Hydra's
basic launcher), with the points that share a training handed to it together
(dlx/sweep/sharing.py: points that differ only in trainer.epochs, and with hydra.launcher.fuse
only in optimizer.lr). Each point is still its own Hydra job: its output dir, .hydra/ files,
callbacks and JobReturn, in the order the sweeper asked for them.

Selected by default (conf/config.yaml); `hydra.launcher.share_prefixes=false` trains every
point on its own; other launchers stay selectable: ray (dlx/sweep/ray_launcher.py), joblib, slurm.
"""

from __future__ import annotations

import copy
import functools
import os
import time
from pathlib import Path
from typing import Callable, Sequence

from omegaconf import OmegaConf, open_dict

from dlx.sweep import sharing  # (not fused: it imports torch; the CLI imports this module)

say: Callable[[str], None] = lambda line: None  # noqa: E731 - the CLI sets how lines reach the user
# points whose worker process died (hydra/launcher=ray): output dir -> why. The sweep's parent
# ends their runs KILLED (dlx/sweep/callback.py) and the CLI names each one at the end.
lost: dict[str, str] = {}


class Progress:
    """Where a sweep in this process is: the CLI prints `point 7/27 (...) ... ~1m40s left`."""

    def __init__(self):
        self.total = 0  # points the sweep will run (a sweeper that knows more raises it)
        self.done = 0
        self.started: float | None = None
        self.swept: set[str] = set()  # the keys whose values differ between points

    def expect(self, total: int, batch: Sequence[Sequence[str]] = ()) -> None:
        self.total = max(self.total, total)
        values: dict[str, set[str]] = {}
        for overrides in batch:
            for o in overrides:
                key, _, value = o.partition("=")
                values.setdefault(key, set()).add(value)
        self.swept |= {k for k, v in values.items() if len(v) > 1}

    def begin(self, num: int, overrides: list[str]) -> str | None:
        """The line that announces point `num` (0-based), or None outside a known sweep."""
        if not self.total:
            return None
        self.started = self.started or time.monotonic()
        return self.label(num, overrides) + self.left()

    def label(self, num: int, overrides: list[str]) -> str:
        """`point 7/27 (the overrides that differ between points)`"""
        shown = [o for o in overrides if o.partition("=")[0] in self.swept] or overrides
        return f"point {num + 1}/{self.total} ({' '.join(shown)})"

    def left(self) -> str:
        """` … ~1m40s left`, from the pace of the points done so far ('' before the first)."""
        if not self.done or self.started is None:
            return ""
        seconds = (time.monotonic() - self.started) / self.done * (self.total - self.done)
        return f" … ~{int(seconds // 60)}m{int(seconds % 60):02d}s left" if seconds >= 60 \
            else f" … ~{seconds:.0f}s left"

    def end(self) -> None:
        self.done += 1


progress = Progress()


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
    from hydra.core.utils import configure_log, setup_globals

    setup_globals()
    progress.expect(initial_job_idx + len(job_overrides), job_overrides)
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    jobs = compose(hydra_context, config, job_overrides, initial_job_idx)
    groups, why = sharing.groups(jobs, share_prefixes, sharing.stacks(fuse, config))
    if why:
        say(why)
    returns = {}
    for group in groups:
        for job, ret in zip(group, run_group(hydra_context, task_function, group, fuse)):
            returns[job.idx] = ret
        configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    return [returns[j.idx] for j in jobs]


def run_group(hydra_context, task_function, group: list[sharing.Job], fuse: str = "false") -> list:
    """The JobReturns of a group of jobs that share a training, in its order: the first job
    trains it all (the task gets the other points explicitly and fills `shared` with their
    results); each other job then records the result it got."""
    from hydra.core.utils import run_job

    lead, *others = group
    shared: list = []
    task = functools.partial(task_function, group=[j.point() for j in others], results=shared,
                             fuse=str(fuse).lower()) if others else task_function
    returns = [run(run_job, hydra_context, task, lead)]
    for i, job in enumerate(others):
        given = functools.partial(task_function, result=shared[i]) if i < len(shared) \
            else task_function  # the group's training never got this far: on its own
        returns.append(run(run_job, hydra_context, given, job))
    return returns


def run(run_job, hydra_context, task_function, job: sharing.Job):
    return run_job(hydra_context=hydra_context, task_function=task_function, config=job.config,
                   job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
