"""conf/scheduler: learning-rate schedules, built by dlx/training/schedulers.py. `name` picks the
builder; cosine and onecycle read trainer.epochs (their shape depends on the run's length)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dlx.config.fields import fraction, non_negative, one_of, positive
from dlx.config.regularizer import MODES, monitor


@dataclass
class SchedulerConfig:
    name: str = "none"  # none: the optimizer's lr for every epoch
    READS_EPOCHS: ClassVar[bool] = False  # the schedule's shape depends on trainer.epochs


@dataclass
class StepSchedulerConfig(SchedulerConfig):
    name: str = "step"
    step_size: int = positive(10)  # epochs between drops
    gamma: float = positive(0.1)  # the lr is multiplied by this every step_size epochs


@dataclass
class CosineSchedulerConfig(SchedulerConfig):
    name: str = "cosine"
    warmup_epochs: int = non_negative(0)  # linear warmup: epoch i < W runs at lr * (i+1)/(W+1)
    min_lr: float = non_negative(0.0)  # the cosine decays from optimizer.lr towards this
    READS_EPOCHS: ClassVar[bool] = True


@dataclass
class PlateauSchedulerConfig(SchedulerConfig):
    name: str = "plateau"
    monitor: str = monitor("${trainer.monitor}")  # the validation metric watched
    mode: str = one_of("${trainer.monitor_mode}", *MODES)
    factor: float = fraction(0.1)  # the lr is multiplied by this on a plateau
    patience: int = non_negative(5)  # epochs without improvement before the lr drops
    threshold: float = non_negative(1e-4)  # relative improvement that counts (torch's default)
    min_lr: float = non_negative(0.0)  # the lr never drops below this


@dataclass
class OneCycleSchedulerConfig(SchedulerConfig):
    name: str = "onecycle"
    max_lr: float = positive("${optimizer.lr}")  # the peak
    pct_start: float = fraction(0.3)  # fraction of all steps spent rising to max_lr
    div_factor: float = positive(25.0)  # the start lr is max_lr / div_factor
    final_div_factor: float = positive(1e4)  # the last lr is start lr / final_div_factor
    cycle_momentum: bool = False  # true also cycles SGD momentum / Adam beta1 (needs one)
    READS_EPOCHS: ClassVar[bool] = True


OPTIONS = {"none": SchedulerConfig, "step": StepSchedulerConfig, "cosine": CosineSchedulerConfig,
           "plateau": PlateauSchedulerConfig, "onecycle": OneCycleSchedulerConfig}
