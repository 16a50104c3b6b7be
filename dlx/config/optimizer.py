"""conf/optimizer: torch.optim classes, instantiated `_partial_` and bound to the model's parameters
when it exists (dlx/training/optim.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, List

from omegaconf import MISSING

from dlx.config.fields import matches, non_negative, positive


@dataclass
class OptimizerConfig:
    _target_: str = MISSING
    _partial_: bool = True  # parameters are bound when the model exists
    lr: float = positive(0.001)
    weight_decay: float = non_negative(0.0)


@dataclass
class SGDConfig(OptimizerConfig):
    """(Mini-batch) stochastic gradient descent; momentum 0 is the plain textbook rule."""

    _target_: str = "torch.optim.SGD"
    lr: float = positive(0.01)
    momentum: float = non_negative(0.0)
    nesterov: bool = False  # needs momentum > 0


@dataclass
class AdamConfig(OptimizerConfig):
    _target_: str = "torch.optim.Adam"
    betas: List[float] = matches([0.9, 0.999], lambda v: len(v) == 2 and all(0 <= b < 1 for b in v),
                                 "must be two values in [0, 1), e.g. [0.9, 0.999]")
    eps: float = non_negative(1e-8)


@dataclass
class AdamWConfig(AdamConfig):
    _target_: str = "torch.optim.AdamW"
    weight_decay: float = non_negative(0.01)  # decoupled: AdamW's own default


@dataclass
class AdagradConfig(OptimizerConfig):
    _target_: str = "torch.optim.Adagrad"
    lr: float = positive(0.01)


@dataclass
class RMSpropConfig(OptimizerConfig):
    _target_: str = "torch.optim.RMSprop"
    alpha: float = non_negative(0.99)  # smoothing of the squared-gradient average
    momentum: float = non_negative(0.0)


@dataclass
class CustomOptimizerConfig:
    """Your own optimizer: `_target_` names a torch.optim.Optimizer subclass; lr and every key
    you add (+optimizer.momentum=0.9) are passed to it, checked against its signature
    (dlx/config/targets.py; docs/extending.md)."""

    _target_: str = MISSING  # e.g. myopt.HalfSGD
    _partial_: bool = True  # parameters are bound when the model exists
    lr: float = positive(0.001)
    OPEN: ClassVar[bool] = True


OPTIONS = {"sgd": SGDConfig, "adam": AdamConfig, "adamw": AdamWConfig, "adagrad": AdagradConfig,
           "rmsprop": RMSpropConfig, "custom": CustomOptimizerConfig}
