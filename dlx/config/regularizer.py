"""conf/regularizer: selectable together (`regularizer=[l2,dropout,early_stopping]`); each option's
YAML has `# @package regularizer.<name>`, so its keys land under cfg.regularizer.<name>.
dlx/training/regularizers.py applies them."""

from __future__ import annotations

from dataclasses import dataclass

from dlx.config.fields import fraction, matches, non_negative, one_of

MODES = ("min", "max")


def monitor(default: str):
    """A validation metric (which ones a task logs: dlx/tasks.py)."""
    return matches(default, lambda v: str(v).startswith("val_"),
                   "must name a validation metric (val_loss, val_accuracy, ...)")


@dataclass
class L1Config:
    weight: float = non_negative(1e-4)  # lambda in lambda * sum|w|, added to the training loss
    include_bias: bool = False  # false: weights only (tensors with >= 2 dims), not biases/norm params


@dataclass
class L2Config:
    weight: float = non_negative(1e-4)  # lambda in lambda * sum w^2, or the decay rate (decoupled)
    decoupled: bool = False  # true: AdamW's decoupled weight decay on the weights, not a loss term
    include_bias: bool = False  # false: weights only, as for l1


@dataclass
class DropoutConfig:
    p: float = fraction(0.5, low_open=False)  # rate at every dropout site (nn.Dropout) of the model


@dataclass
class EarlyStoppingConfig:
    monitor: str = monitor("${trainer.monitor}")
    mode: str = one_of("${trainer.monitor_mode}", *MODES)
    patience: int = non_negative(5)  # epochs without improvement before training stops
    min_delta: float = non_negative(0.0)  # an improvement must beat the best so far by more than this
    restore_best: bool = True  # end with the best epoch's weights: they are the logged model


OPTIONS = {"l1": L1Config, "l2": L2Config, "dropout": DropoutConfig,
           "early_stopping": EarlyStoppingConfig}
