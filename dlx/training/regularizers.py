"""Regularizers, selected together from conf/regularizer (`regularizer=[l2,dropout,early_stopping]`).

`build(cfg.regularizer, model, ...)` applies them to a built model and returns what the rest of
training needs: the optimizer's parameter groups (decoupled weight decay), the penalty the fit
loop adds to the loss (l1, l2), and the early-stopping watcher. Dropout is set here, on the
model's own dropout sites (every nn.Dropout*): p from the config when selected, 0 when not (a
network of the user's keeps its own rates unless regularizer=[dropout] is selected).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dlx.models import set_dropout



@dataclass
class Regularizers:
    params: Any  # what the optimizer is built with: parameters, or groups with their weight decay
    penalty: Callable[[], torch.Tensor] | None  # l1/l2 term added to each batch's loss; None: none
    early_stopping: EarlyStopping | None  # watches the monitored metric; None without a val split


def build(cfg, model: nn.Module, monitor: str, monitor_mode: str,
          has_val: bool = True) -> Regularizers:
    """Apply `cfg` (the `regularizer` node: one key per selected option) to `model`."""
    selected = set(cfg.keys()) if cfg is not None else set()

    # dropout: the regularizer sets the rate at every site; not selected -> off (p=0) in dlx's
    # networks, while a network of the user's keeps the rates its code gave it
    if "dropout" in selected:
        if not set_dropout(model, cfg.dropout.p):
            from dlx.config.validate import no_dropout_sites
            from dlx.errors import ConfigError

            raise ConfigError("invalid config: " + no_dropout_sites(type(model).__qualname__))
    elif type(model).__module__.startswith("dlx."):
        set_dropout(model, 0.0)

    # l2 as decoupled weight decay: AdamW's param groups, the weights decayed, biases not
    params: Any = model.parameters()
    terms: list[tuple[float, str, list[nn.Parameter]]] = []
    if "l2" in selected and cfg.l2.decoupled:  # with AdamW (dlx/config/validate.py)
        decay = penalized(model, cfg.l2.include_bias)
        ids = {id(p) for p in decay}
        rest = [p for p in model.parameters() if id(p) not in ids]
        params = [{"params": decay, "weight_decay": cfg.l2.weight},
                  {"params": rest, "weight_decay": 0.0}]
    elif "l2" in selected and cfg.l2.weight > 0:
        terms.append((cfg.l2.weight, "l2", penalized(model, cfg.l2.include_bias)))
    if "l1" in selected and cfg.l1.weight > 0:
        terms.append((cfg.l1.weight, "l1", penalized(model, cfg.l1.include_bias)))

    # early stopping; without it, the same watcher only tracks the best epoch (for best.pt)
    stopper = None
    if "early_stopping" in selected:
        es = cfg.early_stopping  # it has a validation split to watch (dlx/config/validate.py)
        stopper = EarlyStopping(es.monitor, es.mode, es.patience, es.min_delta, es.restore_best)
    elif has_val:
        stopper = EarlyStopping(monitor, monitor_mode)
    return Regularizers(params, _penalty(terms) if terms else None, stopper)


def penalized(model: nn.Module, include_bias: bool = False) -> list[nn.Parameter]:
    """The parameters a penalty applies to: weights (tensors with >= 2 dims: linear, conv,
    embedding and recurrent matrices), not biases or normalization params, unless include_bias."""
    return [p for p in model.parameters() if p.requires_grad and (include_bias or p.dim() >= 2)]


def _penalty(terms: list[tuple[float, str, list[nn.Parameter]]]) -> Callable[[], torch.Tensor]:
    def penalty() -> torch.Tensor:
        total = 0.0
        for weight, kind, params in terms:
            if kind == "l1":
                total = total + weight * sum(p.abs().sum() for p in params)
            else:
                total = total + weight * sum(p.pow(2).sum() for p in params)
        return total

    return penalty


class EarlyStopping:
    """Watches one validation metric: remembers the best epoch (and its weights when restoring)
    and says when `patience` epochs have passed without an improvement larger than `min_delta`.
    patience=None never stops: it only tracks the best epoch."""

    def __init__(self, monitor: str, mode: str = "min", patience: int | None = None,
                 min_delta: float = 0.0, restore_best: bool = False):
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.min_delta, self.restore_best = min_delta, restore_best
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0  # epochs since the last improvement
        self.best_state: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> bool:
        """Record this epoch's metrics; True when it is the best so far."""
        value = metrics[self.monitor]
        if math.isfinite(value) and (
            self.best is None
            or (value < self.best - self.min_delta if self.mode == "min"
                else value > self.best + self.min_delta)
        ):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return True
        self.wait += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.wait > 0 and self.wait >= self.patience

    def restore(self, model: nn.Module) -> int | None:
        """Load the best epoch's weights into `model` (when restoring); return that epoch."""
        if self.restore_best and self.best_state is not None:
            model.load_state_dict(self.best_state)
            return self.best_epoch
        return None

    def copy_as_ended(self, model: nn.Module) -> nn.Module:
        """A copy of `model` as a fit that ended this epoch would return it: with the best
        epoch's weights when restoring; `model` itself trains on untouched."""
        ended = copy.deepcopy(model)
        self.restore(ended)
        return ended

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "best_state": self.best_state}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        self.best_state = state["best_state"]
