"""dlx's Hydra launcher: the jobs of a sweep in this process, one after the other (as Hydra's
basic launcher), with the points that differ only in trainer.epochs trained once
(dlx/sweep/prefix.py). Each point is still its own Hydra job: its output dir, .hydra/ files,
callbacks and JobReturn, in the order the sweeper asked for them.

Selected by default (conf/config.yaml); `hydra.launcher.share_prefixes=false` trains every
point on its own; other launchers (joblib, slurm, ray) stay selectable.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Sequence

from omegaconf import OmegaConf, open_dict

from dlx.sweep import prefix  # (not fused: it imports torch; the CLI imports this module)

say: Callable[[str], None] = lambda line: None  # noqa: E731 - the CLI sets how lines reach the user


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
        left = ""
        if self.done:
            seconds = (time.monotonic() - self.started) / self.done * (self.total - self.done)
            left = f" … ~{int(seconds // 60)}m{int(seconds % 60):02d}s left" if seconds >= 60 \
                else f" … ~{seconds:.0f}s left"
        shown = [o for o in overrides if o.partition("=")[0] in self.swept] or overrides
        return f"point {num + 1}/{self.total} ({' '.join(shown)}){left}"

    def end(self) -> None:
        self.done += 1


progress = Progress()


def launch(hydra_context, task_function, config, job_overrides: Sequence[Sequence[str]],
           initial_job_idx: int, share_prefixes: bool, fuse: str = "auto") -> list:
    from hydra.core.utils import configure_log, run_job, setup_globals

    from dlx.sweep import fused

    setup_globals()
    progress.expect(initial_job_idx + len(job_overrides), job_overrides)
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    points = []
    for idx, overrides in enumerate(job_overrides, initial_job_idx):
        job = hydra_context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(job):
            job.hydra.job.id = job.hydra.job.num = idx
        where = os.path.join(str(OmegaConf.select(job, "hydra.sweep.dir")),
                             str(OmegaConf.select(job, "hydra.sweep.subdir")))
        points.append(prefix.Point(idx, list(overrides), job, Path(where).resolve()))
    groups, why = prefix.groups(points, share_prefixes)
    if why:
        say(why)
    if str(fuse).lower() != "false":  # points alone may stack with those differing only in lr
        groups = [g for g in groups if len(g) > 1] + fused_groups([g[0] for g in groups if len(g) == 1])
    returns = {}
    for group in sorted(groups, key=lambda g: min(p.idx for p in g)):
        if len({p.epochs for p in group}) > 1:  # epoch prefixes: the longest trains
            *others, first = group
            scope = prefix.sharing(others)
        else:  # the first trains, stacked with the others if hydra.launcher.fuse says so
            first, *others = group
            scope = fused.offering(others, str(fuse).lower())
        with scope:
            returns[first.idx] = run(run_job, hydra_context, task_function, first)
        for p in others:  # each finds its result there, or trains on its own
            returns[p.idx] = run(run_job, hydra_context, task_function, p)
        configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    return [returns[p.idx] for p in points]


def fused_groups(points: list[prefix.Point]) -> list[list[prefix.Point]]:
    """Points that differ only in optimizer.lr, together (a point alone stays alone)."""
    by_rest: dict[tuple, list[prefix.Point]] = {}
    for p in points:
        rest = tuple(o for o in p.overrides if not o.lstrip("+").startswith("optimizer.lr="))
        by_rest.setdefault(rest, []).append(p)
    return list(by_rest.values())


def run(run_job, hydra_context, task_function, point: prefix.Point):
    return run_job(hydra_context=hydra_context, task_function=task_function, config=point.config,
                   job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
