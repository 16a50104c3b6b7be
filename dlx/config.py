"""Schemas for every config group, registered in Hydra's ConfigStore.

Each YAML option in conf/<group>/ starts from one of these schemas (its defaults list names
`/<group>_<name>_schema@_here_`), so Hydra rejects unknown keys and wrong types while composing.
Value checks (ranges, allowed names) run in `validate`, before anything is built or tracked,
and report every problem at once with its key path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import MISSING, DictConfig, OmegaConf

from dlx.errors import ConfigError

# ---------------------------------------------------------------------------------- model
ACTIVATIONS = ("sigmoid", "relu", "tanh", "gelu")


@dataclass
class ModelConfig:
    _target_: str = MISSING


@dataclass
class LinearConfig(ModelConfig):
    _target_: str = "dlx.models.linear.Linear"


@dataclass
class LogisticConfig(ModelConfig):
    _target_: str = "dlx.models.linear.Logistic"


@dataclass
class MLPConfig(ModelConfig):
    _target_: str = "dlx.models.mlp.MLP"
    hidden_sizes: List[int] = field(default_factory=lambda: [128, 64])
    activation: str = "relu"  # sigmoid | relu | tanh | gelu


@dataclass
class CNNConfig(ModelConfig):
    _target_: str = "dlx.models.cnn.CNN"
    channels: List[int] = field(default_factory=lambda: [32, 64])  # one conv+pool block each
    kernel_size: int = 3
    hidden: int = 128  # the fully-connected layer before the output
    pool: str = "max"  # max | avg


# ------------------------------------------------------------------------------ optimizer
@dataclass
class OptimizerConfig:
    _target_: str = MISSING
    _partial_: bool = True  # parameters are bound when the model exists
    lr: float = 0.001
    weight_decay: float = 0.0


@dataclass
class SGDConfig(OptimizerConfig):
    _target_: str = "torch.optim.SGD"
    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False


@dataclass
class AdamConfig(OptimizerConfig):
    _target_: str = "torch.optim.Adam"
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8


@dataclass
class AdamWConfig(AdamConfig):
    _target_: str = "torch.optim.AdamW"
    weight_decay: float = 0.01


@dataclass
class AdagradConfig(OptimizerConfig):
    _target_: str = "torch.optim.Adagrad"
    lr: float = 0.01


@dataclass
class RMSpropConfig(OptimizerConfig):
    _target_: str = "torch.optim.RMSprop"
    lr: float = 0.001
    alpha: float = 0.99
    momentum: float = 0.0


# -------------------------------------------------------------------------------- dataset
@dataclass
class DatasetConfig:
    name: str = MISSING  # which loader in dlx/data/loader.py builds it
    batch_size: int = 64
    test_fraction: float = 0.2  # held out once; never seen by training or model selection
    val_fraction: float = 0.1  # of what remains after the test split
    split_seed: int = 42  # the source material's seed; fixed so sweeps share one split


@dataclass
class DigitsConfig(DatasetConfig):
    name: str = "digits"


@dataclass
class SyntheticLinearConfig(DatasetConfig):
    name: str = "synthetic_linear"
    n_samples: int = 100
    weight: float = 2.0
    bias: float = 1.0
    noise: float = 0.1  # std of the Gaussian noise added to y
    seed: int = 0  # draws the points


@dataclass
class SyntheticLogisticConfig(DatasetConfig):
    name: str = "synthetic_logistic"
    n_samples: int = 100
    seed: int = 0


# -------------------------------------------------------------------------- trainer, tracking
@dataclass
class TrainerConfig:
    epochs: int = 30
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 42  # weights init and batch order
    monitor: str = "val_loss"  # the validation metric that picks the best run of a sweep
    monitor_mode: str = "min"  # min | max
    progress: bool = True  # a progress bar per epoch on a terminal; false: plain epoch lines


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: Optional[str] = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db where dlx started
    experiment: str = "dlx"
    log_model: bool = True
    model_format: str = "pt2"  # pt2 (torch.export, no pickle on load) | pickle


SCHEMAS = {
    "model": {"linear": LinearConfig, "logistic": LogisticConfig, "mlp": MLPConfig, "cnn": CNNConfig},
    "optimizer": {
        "sgd": SGDConfig,
        "adam": AdamConfig,
        "adamw": AdamWConfig,
        "adagrad": AdagradConfig,
        "rmsprop": RMSpropConfig,
    },
    "dataset": {
        "digits": DigitsConfig,
        "synthetic_linear": SyntheticLinearConfig,
        "synthetic_logistic": SyntheticLogisticConfig,
    },
    "trainer": {"default": TrainerConfig},
    "tracking": {"default": TrackingConfig},
}


def register() -> None:
    """Put every schema in Hydra's ConfigStore as `<group>_<name>_schema`: a top-level name, not
    a group, so `dlx train --help` lists only the YAML options."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for group, options in SCHEMAS.items():
        for name, node in options.items():
            cs.store(name=f"{group}_{name}_schema", node=node)


# ------------------------------------------------------------------------------ validation
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
_TARGET_PREFIXES = ("dlx.", "torch.")


def _check_value(key: str, value: Any, problems: list[str]) -> None:
    """Range checks that a type cannot express. `key` is the full dotted path."""
    name = key.rsplit(".", 1)[-1]
    if name in ("lr", "batch_size", "epochs", "n_samples", "kernel_size", "hidden") and value <= 0:
        problems.append(f"{key}={value} must be > 0")
    elif name in ("weight_decay", "momentum", "noise", "eps") and value < 0:
        problems.append(f"{key}={value} must be >= 0")
    elif name == "test_fraction" and not 0 < value < 1:
        problems.append(f"{key}={value} must be between 0 and 1 (exclusive)")
    elif name == "val_fraction" and not 0 <= value < 1:
        problems.append(f"{key}={value} must be in [0, 1)")
    elif name in ("hidden_sizes", "channels") and any(v <= 0 for v in value):
        problems.append(f"{key}={list(value)} must hold sizes > 0")
    elif name == "activation" and value not in ACTIVATIONS:
        problems.append(f"{key}={value} is not one of {', '.join(ACTIVATIONS)}")
    elif name == "pool" and value not in ("max", "avg"):
        problems.append(f"{key}={value} is not one of max, avg")
    elif name == "device" and not _DEVICE.match(str(value)):
        problems.append(f"{key}={value} is not one of auto, cpu, cuda, cuda:N")
    elif name == "monitor_mode" and value not in ("min", "max"):
        problems.append(f"{key}={value} is not one of min, max")
    elif name == "monitor" and not str(value).startswith("val_"):
        problems.append(f"{key}={value} must name a validation metric (val_loss, val_accuracy, ...)")
    elif name == "model_format" and value not in ("pt2", "pickle"):
        problems.append(f"{key}={value} is not one of pt2, pickle")
    elif name == "_target_" and not str(value).startswith(_TARGET_PREFIXES):
        problems.append(f"{key}={value} is outside the dlx and torch namespaces")


def validate(cfg: DictConfig) -> None:
    """Check every value of the composed config; raise one ConfigError listing all problems."""
    problems: list[str] = []
    for group in SCHEMAS:
        node = cfg.get(group)
        if node is None:
            continue
        for key, value in OmegaConf.to_container(node, resolve=True).items():
            if value is not None and not isinstance(value, (dict,)):
                _check_value(f"{group}.{key}", value, problems)
    if problems:
        raise ConfigError("invalid config: " + "; ".join(problems))


def flatten(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as `group.key -> value`, the way runs record their params."""
    out: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out[prefix] = node

    walk("", OmegaConf.to_container(cfg, resolve=True))
    return out

