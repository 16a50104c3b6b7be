"""Learning-rate schedules from conf/scheduler: none, step, cosine (with warmup), plateau, onecycle.

`build(cfg.scheduler, optimizer, epochs, steps_per_epoch)` wraps a torch scheduler in a Schedule
that knows when it steps, so the fit loop calls `after_batch()` and `after_epoch(metrics)` and
never asks which kind it has: onecycle steps every batch, plateau every epoch on the monitored
metric, the others every epoch.
"""

from __future__ import annotations

import math

import torch
from torch.optim import lr_scheduler

from dlx.errors import ConfigError


class Schedule:
    def __init__(self, scheduler=None, per_batch: bool = False, monitor: str | None = None):
        self.scheduler, self.per_batch, self.monitor = scheduler, per_batch, monitor

    def after_batch(self) -> None:
        if self.scheduler is not None and self.per_batch:
            self.scheduler.step()

    def after_epoch(self, metrics: dict[str, float]) -> None:
        if self.scheduler is None or self.per_batch:
            return
        if self.monitor is not None:
            self.scheduler.step(metrics[self.monitor])
        else:
            self.scheduler.step()

    def state_dict(self) -> dict | None:
        return None if self.scheduler is None else self.scheduler.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        if self.scheduler is not None and state is not None:
            self.scheduler.load_state_dict(state)


def build(cfg, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int) -> Schedule:
    """The Schedule for `cfg` (the `scheduler` node); `none` (or no node) keeps the lr constant."""
    name = "none" if cfg is None else cfg.name
    if name == "none":
        return Schedule()
    if name == "step":
        return Schedule(lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma))
    if name == "cosine":  # warmup_epochs < epochs (dlx/config/validate.py)
        return Schedule(lr_scheduler.LambdaLR(
            optimizer, [cosine(cfg.warmup_epochs, epochs, cfg.min_lr / g["lr"])
                        for g in optimizer.param_groups]))
    if name == "plateau":  # it has a validation split to watch (dlx/config/validate.py)
        return Schedule(lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=cfg.mode, factor=cfg.factor, patience=cfg.patience,
            threshold=cfg.threshold, min_lr=cfg.min_lr), monitor=cfg.monitor)
    if name == "onecycle":
        return Schedule(lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.max_lr, total_steps=epochs * steps_per_epoch,
            pct_start=cfg.pct_start, div_factor=cfg.div_factor,
            final_div_factor=cfg.final_div_factor, cycle_momentum=cfg.cycle_momentum),
            per_batch=True)
    from dlx.config.scheduler import OPTIONS

    raise ConfigError(f"scheduler.name={name} is not one of {', '.join(OPTIONS)}")


def cosine(warmup: int, epochs: int, floor: float):
    """lr factor for epoch index i (0-based): linear warmup (i+1)/(W+1) for i < W, then a cosine
    from 1 down towards `floor` (min_lr / lr) over the remaining E - W epochs."""

    def factor(i: int) -> float:
        if i < warmup:
            return (i + 1) / (warmup + 1)
        t = min(i - warmup, epochs - warmup) / (epochs - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

    return factor
