"""Schemas for every config group, registered in Hydra's ConfigStore.

Each YAML option in conf/<group>/ starts from one of these schemas (its defaults list names
`/<group>_<name>_schema@_here_`), so Hydra rejects unknown keys and wrong types while composing.
Value checks (ranges, allowed names) run in `validate`, before anything is built or tracked,
and report every problem at once with its key path.
"""

from __future__ import annotations

import math
import os
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
    batchnorm: bool = False  # BatchNorm1d after each hidden layer, before its activation


@dataclass
class CNNConfig(ModelConfig):
    _target_: str = "dlx.models.cnn.CNN"
    channels: List[int] = field(default_factory=lambda: [32, 64])  # one conv+pool block each
    kernel_size: Any = 3  # one size for every conv, or one per block: [5, 3]
    hidden: int = 128  # the fully-connected layer before the output
    pool: str = "max"  # max | avg
    batchnorm: bool = False  # BatchNorm2d after each conv, before its ReLU


@dataclass
class CNNCifarConfig(CNNConfig):
    channels: List[int] = field(default_factory=lambda: [32, 64, 128])  # the CIFAR-10 CNN


@dataclass
class RecurrentConfig(ModelConfig):
    _target_: str = "dlx.models.rnn.RNN"  # simple (Elman) RNN; LSTM and GRU below
    embedding_dim: int = 32  # token ids (dataset vocab_size > 0) are embedded to this width
    hidden_size: int = 64
    num_layers: int = 1  # stacked recurrent layers
    bidirectional: bool = False  # a second layer per level reads the sequence backwards


@dataclass
class LSTMConfig(RecurrentConfig):
    _target_: str = "dlx.models.rnn.LSTM"


@dataclass
class GRUConfig(RecurrentConfig):
    _target_: str = "dlx.models.rnn.GRU"


@dataclass
class TransformerConfig(ModelConfig):
    _target_: str = "dlx.models.transformer.Transformer"
    d_model: int = 64  # token embedding width
    num_heads: int = 4  # must divide d_model
    num_layers: int = 2  # encoder layers
    dim_feedforward: int = 128  # width of each layer's feed-forward block


@dataclass
class AutoencoderConfig(ModelConfig):
    _target_: str = "dlx.models.autoencoder.DenseAutoencoder"
    hidden_sizes: List[int] = field(default_factory=lambda: [128])  # encoder; decoder mirrors it
    activation: str = "relu"  # hidden layers; the output is always a sigmoid (inputs in [0, 1])


@dataclass
class ConvAutoencoderConfig(ModelConfig):
    _target_: str = "dlx.models.autoencoder.ConvAutoencoder"
    channels: List[int] = field(default_factory=lambda: [16, 32])  # one conv+pool block each
    kernel_size: int = 3


@dataclass
class ResNet18Config(ModelConfig):
    _target_: str = "dlx.models.pretrained.ResNet18"
    pretrained: Optional[str] = None  # path to torchvision's weights file; None: random init
    freeze: bool = False  # train only the new classifier head
    min_size: int = 32  # smaller images are resized up to this (bilinear) before the backbone
    normalize: bool = True  # ImageNet mean/std on the inputs, as the weights were trained


@dataclass
class VGG11Config(ResNet18Config):
    _target_: str = "dlx.models.pretrained.VGG11"


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
    x_min: float = 0.0  # x is uniform in [x_min, x_max)
    x_max: float = 1.0
    weight: float = 2.0
    bias: float = 1.0
    noise: float = 0.1  # std of the Gaussian noise added to y
    seed: int = 0  # draws the points


@dataclass
class SyntheticLogisticConfig(DatasetConfig):
    name: str = "synthetic_logistic"
    n_samples: int = 100
    seed: int = 0


@dataclass
class SyntheticSequenceConfig(DatasetConfig):
    name: str = "synthetic_sequence"
    n_samples: int = 100
    length: int = 10  # tokens per sequence
    min_length: int = 0  # > 0: lengths uniform in [min_length, length], right-padded with 0
    vocab_size: int = 1000  # ids 0 (<pad>) and 1 (<unk>) are reserved; tokens are 2..vocab_size-1
    labels: str = "noise"  # noise: coin flips (the source) | signal: 1 iff a trigger token occurs
    seed: int = 0


@dataclass
class ImageConfig(DatasetConfig):
    """Image datasets keep uint8 pixels on the device; each batch is scaled/augmented there."""

    normalize: str = "scale"  # scale: x/255 | standardize: (x/255 - mean) / std per channel
    mean: List[float] = field(default_factory=lambda: [0.5])  # one value, or one per channel
    std: List[float] = field(default_factory=lambda: [0.5])
    crop_padding: int = 0  # augmentation: > 0 crops each training image at random from a padded copy
    hflip: bool = False  # augmentation: flip each training image left-right with probability 1/2


@dataclass
class MNISTConfig(ImageConfig):
    name: str = "mnist"
    root: str = "data"  # torchvision's layout: <root>/MNIST/raw/{train,t10k}-*-ubyte
    download: bool = False  # offline by default; true lets torchvision fetch the files into root
    mean: List[float] = field(default_factory=lambda: [0.1307])  # MNIST train-set statistics
    std: List[float] = field(default_factory=lambda: [0.3081])


@dataclass
class FashionMNISTConfig(MNISTConfig):
    name: str = "fashion_mnist"  # <root>/FashionMNIST/raw/...
    mean: List[float] = field(default_factory=lambda: [0.2860])
    std: List[float] = field(default_factory=lambda: [0.3530])


@dataclass
class CIFAR10Config(ImageConfig):
    name: str = "cifar10"
    root: str = "data"  # torchvision's layout: <root>/cifar-10-batches-py/
    download: bool = False  # offline by default; true lets torchvision fetch the archive into root
    verify: bool = True  # torchvision's md5 check of the files; false loads other copies unchecked
    mean: List[float] = field(default_factory=lambda: [0.4914, 0.4822, 0.4465])  # train-set stats
    std: List[float] = field(default_factory=lambda: [0.2470, 0.2435, 0.2616])


@dataclass
class ImageFolderConfig(ImageConfig):
    name: str = "image_folder"
    root: Optional[str] = None  # required: a folder with one sub-folder of images per class
    grayscale: bool = True  # the source's preprocessing: grayscale, resize to 28x28, scale 1/255
    size: List[int] = field(default_factory=lambda: [28, 28])  # height, width after resizing


@dataclass
class IMDBConfig(DatasetConfig):
    name: str = "imdb"
    root: str = "data"  # holds aclImdb/{train,test}/{pos,neg}/*.txt
    download: bool = False  # offline by default; true fetches aclImdb_v1.tar.gz (84 MB) into root
    max_len: int = 200  # tokens per review: longer ones are cut, shorter ones right-padded
    max_vocab: int = 20000  # the most frequent train-split words, <pad> and <unk> included
    min_freq: int = 2  # rarer train words become <unk>


@dataclass
class CSVConfig(DatasetConfig):
    name: str = "csv"
    path: Optional[str] = None  # required: a comma-separated file with a header row
    target: str = "label"  # the column to predict; every other column is a feature
    task: str = "auto"  # auto | classification | regression
    max_classes: int = 20  # auto: an integer or text target with at most this many values is a class
    encoding: str = "utf-8"
    # preprocessing, fitted on the train split only (numbers below are train statistics)
    missing: str = "mean"  # drop | mean | median | most_frequent | interpolate; text columns: most frequent
    outliers: str = "none"  # none | clip: to mean +- z_threshold*std | iqr: drop train rows outside
    #   Tukey's fences (train quartiles +- iqr_factor*IQR) and clip val/test values to them
    z_threshold: float = 3.0
    iqr_factor: float = 1.5  # fences at Q1 - f*IQR and Q3 + f*IQR
    scaling: str = "standard"  # none | minmax | standard (z-score)
    feature_selection: str = "none"  # none | variance | kbest (mutual information)
    variance_threshold: float = 0.0  # variance: drop features whose train variance is not above this
    k_best: int = 10  # kbest: features kept


# ---------------------------------------------------------------------------- regularizer
# Selectable together (regularizer=[l2,dropout,early_stopping]); each option's YAML has
# `# @package regularizer.<name>`, so its keys land under cfg.regularizer.<name>.
@dataclass
class L1Config:
    weight: float = 1e-4  # lambda in lambda * sum|w|, added to the training loss
    include_bias: bool = False  # false: weights only (tensors with >= 2 dims), not biases/norm params


@dataclass
class L2Config:
    weight: float = 1e-4  # lambda in lambda * sum w^2 (penalty), or the decay rate (decoupled)
    decoupled: bool = False  # true: decoupled weight decay via AdamW's param groups, not a loss penalty
    include_bias: bool = False  # false: weights only, as for l1


@dataclass
class DropoutConfig:
    p: float = 0.5  # rate at every dropout site (nn.Dropout) of the model; 0 when not selected


@dataclass
class EarlyStoppingConfig:
    monitor: str = "${trainer.monitor}"  # any logged validation metric
    mode: str = "${trainer.monitor_mode}"  # min | max
    patience: int = 5  # epochs without improvement before training stops
    min_delta: float = 0.0  # an improvement must beat the best so far by more than this
    restore_best: bool = True  # end with the best epoch's weights: they are the logged model


# ------------------------------------------------------------------------------ scheduler
@dataclass
class SchedulerConfig:
    name: str = "none"  # which builder in dlx/training/schedulers.py; none: constant lr


@dataclass
class StepSchedulerConfig(SchedulerConfig):
    name: str = "step"
    step_size: int = 10  # epochs between drops
    gamma: float = 0.1  # the lr is multiplied by this every step_size epochs


@dataclass
class CosineSchedulerConfig(SchedulerConfig):
    name: str = "cosine"
    warmup_epochs: int = 0  # linear warmup: epoch i < W runs at lr * (i+1)/(W+1)
    min_lr: float = 0.0  # the cosine decays from optimizer.lr towards this


@dataclass
class PlateauSchedulerConfig(SchedulerConfig):
    name: str = "plateau"
    monitor: str = "${trainer.monitor}"  # the validation metric watched
    mode: str = "${trainer.monitor_mode}"  # min | max
    factor: float = 0.1  # the lr is multiplied by this on a plateau
    patience: int = 5  # epochs without improvement before the lr drops
    threshold: float = 1e-4  # relative improvement that counts (torch's default)
    min_lr: float = 0.0  # the lr never drops below this


@dataclass
class OneCycleSchedulerConfig(SchedulerConfig):
    name: str = "onecycle"
    max_lr: float = "${optimizer.lr}"  # the peak; stepped every batch, not every epoch
    pct_start: float = 0.3  # fraction of all steps spent rising to max_lr
    div_factor: float = 25.0  # the start lr is max_lr / div_factor
    final_div_factor: float = 1e4  # the last lr is start lr / final_div_factor
    cycle_momentum: bool = False  # true also cycles SGD momentum / Adam beta1 (needs one)


# -------------------------------------------------------------------------- trainer, tracking
@dataclass
class TrainerConfig:
    epochs: int = 30
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 42  # weights init and batch order
    monitor: str = "val_loss"  # the validation metric that picks the best run of a sweep
    monitor_mode: str = "min"  # min | max
    progress: bool = True  # a progress bar per epoch on a terminal; false: plain epoch lines
    cv_folds: int = 0  # K >= 2: K-fold cross-validation on train+val (the objective = mean); 0: off
    cv_refit: bool = True  # after cross-validation, fit once on all of train+val and test that model
    grad_clip: float = 0.0  # max global gradient norm (clip_grad_norm_); 0: no clipping
    precision: str = "auto"  # auto (bf16 on CUDA, else fp32) | fp32 | bf16 (autocast) | fp16 (+ scaler; CUDA)
    compile: bool = False  # torch.compile the model for training (first epoch pays the compile)
    deterministic: bool = False  # torch.use_deterministic_algorithms: repeatable on CUDA, slower
    checkpoint_every: int = 1  # epochs between checkpoints in <run dir>/checkpoints; 0: none
    resume: Optional[str] = None  # continue a run: its run dir, a checkpoint file or its MLflow run id
    strategy: str = "auto"  # auto (ddp under torchrun, else single) | single | ddp (torch DDP, torchrun)
    channels_last: str = "auto"  # auto (on for conv nets on CUDA) | true | false
    capture: str = "auto"  # CUDA graphs via torch.compile(mode=reduce-overhead); auto: long CUDA runs


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: Optional[str] = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db where dlx started
    experiment: str = "dlx"
    log_model: bool = True
    model_format: str = "pt2"  # pt2 (torch.export, no pickle on load) | pickle


SCHEMAS = {
    "model": {
        "linear": LinearConfig,
        "logistic": LogisticConfig,
        "mlp": MLPConfig,
        "cnn": CNNConfig,
        "cnn_cifar": CNNCifarConfig,
        "rnn": RecurrentConfig,
        "lstm": LSTMConfig,
        "gru": GRUConfig,
        "transformer": TransformerConfig,
        "autoencoder": AutoencoderConfig,
        "conv_autoencoder": ConvAutoencoderConfig,
        "resnet18": ResNet18Config,
        "vgg11": VGG11Config,
    },
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
        "synthetic_sequence": SyntheticSequenceConfig,
        "mnist": MNISTConfig,
        "fashion_mnist": FashionMNISTConfig,
        "cifar10": CIFAR10Config,
        "image_folder": ImageFolderConfig,
        "imdb": IMDBConfig,
        "csv": CSVConfig,
    },
    "regularizer": {
        "l1": L1Config,
        "l2": L2Config,
        "dropout": DropoutConfig,
        "early_stopping": EarlyStoppingConfig,
    },
    "scheduler": {
        "none": SchedulerConfig,
        "step": StepSchedulerConfig,
        "cosine": CosineSchedulerConfig,
        "plateau": PlateauSchedulerConfig,
        "onecycle": OneCycleSchedulerConfig,
    },
    "trainer": {"default": TrainerConfig},
    "tracking": {"default": TrackingConfig},
}


def register() -> None:
    """Put every schema in Hydra's ConfigStore as `<group>_<name>_schema`: a top-level name, not
    a group, so `dlx train --help` lists only the YAML options."""
    from hydra.core.config_store import ConfigStore

    OmegaConf.register_new_resolver(
        "dlx_direction", lambda mode: "minimize" if mode == "min" else "maximize", replace=True
    )
    cs = ConfigStore.instance()
    for group, options in SCHEMAS.items():
        for name, node in options.items():
            cs.store(name=f"{group}_{name}_schema", node=node)


# ------------------------------------------------------------------------------ validation
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
_TARGET_PREFIXES = ("dlx.", "torch.")
# `_target_` names code that instantiate() imports and runs: a shared config could name anything,
# so only dlx's and torch's classes unless the user opts out in their environment (not in a config,
# which could opt itself out)
ALLOW_ANY_TARGET = "DLX_ALLOW_ANY_TARGET"


_POSITIVE = ("lr", "batch_size", "epochs", "n_samples", "hidden", "hidden_size", "embedding_dim",
             "num_layers", "d_model", "num_heads", "dim_feedforward", "length", "min_size")


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _check_value(key: str, value: Any, problems: list[str]) -> None:
    """Range checks that a type cannot express. `key` is the full dotted path."""
    name = key.rsplit(".", 1)[-1]
    if isinstance(value, float) and not math.isfinite(value):  # nan passes every range check
        problems.append(f"{key}={value} must be a finite number")
    elif name in ("seed", "split_seed") and not 0 <= value < 2**32:
        problems.append(f"{key}={value} must be in [0, 2**32) (numpy and torch seeds)")
    elif name == "betas" and (len(value) != 2 or not all(0 <= b < 1 for b in value)):
        problems.append(f"{key}={list(value)} must be two values in [0, 1), e.g. [0.9, 0.999]")
    elif name in _POSITIVE and value <= 0:
        problems.append(f"{key}={value} must be > 0")
    elif name == "kernel_size" and any(not isinstance(v, int) or v <= 0 for v in _as_list(value)):
        problems.append(f"{key}={value} must be a size > 0 or a list of sizes > 0")
    elif name == "vocab_size" and value < 3:
        problems.append(f"{key}={value} must be >= 3 (ids 0 and 1 are <pad> and <unk>)")
    elif name == "min_length" and value < 0:
        problems.append(f"{key}={value} must be >= 0")
    elif name == "labels" and value not in ("noise", "signal"):
        problems.append(f"{key}={value} is not one of noise, signal")
    elif name in ("weight_decay", "momentum", "noise", "eps", "alpha") and value < 0:
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
    elif name == "_target_" and not str(value).startswith(_TARGET_PREFIXES) \
            and os.environ.get(ALLOW_ANY_TARGET) != "1":
        problems.append(f"{key}={value} is outside the dlx and torch namespaces (set "
                        f"{ALLOW_ANY_TARGET}=1 to allow any importable class)")
    elif name == "cv_folds" and (value == 1 or value < 0):
        problems.append(f"{key}={value} is not cross-validation: use {key}=0 (off) or K >= 2 folds")
    elif key.startswith("dataset."):
        _check_dataset_value(key, name, value, problems)
    elif key.startswith(("regularizer.", "scheduler.")):
        _check_training_value(key, name, value, problems)
    elif name in ("grad_clip", "checkpoint_every") and value < 0:
        problems.append(f"{key}={value} must be >= 0 (0: off)")
    elif name in ("channels_last", "capture") and str(value).lower() not in ("auto", "true", "false"):
        problems.append(f"{key}={value} is not one of auto, true, false")
    elif name == "strategy" and value not in ("auto", "single", "ddp"):
        problems.append(f"{key}={value} is not one of auto, single, ddp")
    elif name == "precision" and value not in PRECISIONS:
        problems.append(f"{key}={value} is not one of {', '.join(PRECISIONS)}")


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _check_training_value(key: str, name: str, value: Any, problems: list[str]) -> None:
    """Regularizer and scheduler options (`monitor` is checked with trainer.monitor)."""
    if name == "mode" and value not in ("min", "max"):
        problems.append(f"{key}={value} is not one of min, max")
    elif name == "p" and not 0 <= value < 1:
        problems.append(f"{key}={value} must be in [0, 1)")
    elif name in ("pct_start", "factor") and not 0 < value < 1:
        problems.append(f"{key}={value} must be between 0 and 1 (exclusive)")
    elif name in ("step_size", "gamma", "max_lr", "div_factor", "final_div_factor") and value <= 0:
        problems.append(f"{key}={value} must be > 0")
    elif name in ("weight", "patience", "min_delta", "warmup_epochs", "min_lr", "threshold") \
            and value < 0:
        problems.append(f"{key}={value} must be >= 0")


_DATASET_CHOICES = {  # dataset options with a fixed set of values
    "normalize": ("scale", "standardize"),
    "task": ("auto", "classification", "regression"),
    "missing": ("drop", "mean", "median", "most_frequent", "interpolate"),
    "outliers": ("none", "clip", "iqr"),
    "scaling": ("none", "minmax", "standard"),
    "feature_selection": ("none", "variance", "kbest"),
}


def _check_dataset_value(key: str, name: str, value: Any, problems: list[str]) -> None:
    if name in _DATASET_CHOICES and value not in _DATASET_CHOICES[name]:
        problems.append(f"{key}={value} is not one of {', '.join(_DATASET_CHOICES[name])}")
    elif name in ("max_len", "min_freq", "k_best", "z_threshold", "iqr_factor") and value <= 0:
        problems.append(f"{key}={value} must be > 0")
    elif name == "max_vocab" and value < 3:
        problems.append(f"{key}={value} must be >= 3 (<pad>, <unk> and at least one word)")
    elif name in ("crop_padding", "variance_threshold") and value < 0:
        problems.append(f"{key}={value} must be >= 0")
    elif name == "max_classes" and value < 2:
        problems.append(f"{key}={value} must be >= 2")
    elif name == "std" and (not value or any(v <= 0 for v in value)):
        problems.append(f"{key}={list(value)} must hold values > 0")
    elif name == "size" and (len(value) != 2 or any(v <= 0 for v in value)):
        problems.append(f"{key}={list(value)} must be [height, width] > 0")


def validate(cfg: DictConfig) -> None:
    """Check every value of the composed config; raise one ConfigError listing all problems."""
    problems: list[str] = []
    _check_keys(cfg, problems)
    for group in SCHEMAS:
        node = cfg.get(group)
        if node is None:
            continue
        for key, value in _leaves(group, OmegaConf.to_container(node, resolve=True)):
            if value is not None:
                _check_value(key, value, problems)
    _check_combinations(cfg, problems)
    if problems:
        raise ConfigError("invalid config: " + "; ".join(problems))


REQUIRED = ("model", "optimizer", "dataset", "trainer", "tracking")  # regularizer, scheduler: optional


def _check_keys(cfg: DictConfig, problems: list[str]) -> None:
    """Groups removed with `~group`, and keys no schema has: `+key=value` adds them past Hydra's
    own check, where a typo would otherwise be ignored silently."""
    import dataclasses

    for key in cfg:
        if key not in SCHEMAS and key != "hydra":  # hydra: Hydra's own node, when composed with it
            problems.append(f"{key} is not a config group (groups: {', '.join(SCHEMAS)}): "
                            f"drop +{key}=... or fix its spelling")
    for group in REQUIRED:
        if cfg.get(group) is None:
            problems.append(f"{group} is missing (removed with ~{group}?): pick one with "
                            f"{group}=<option> (`dlx config list` shows them)")
    nodes = [(group, cfg.get(group)) for group in SCHEMAS if group != "regularizer"]
    regularizers = cfg.get("regularizer")
    if OmegaConf.is_dict(regularizers):
        for name in regularizers:
            if name not in SCHEMAS["regularizer"]:
                problems.append(f"regularizer.{name} is not a regularizer (options: "
                                f"{', '.join(SCHEMAS['regularizer'])})")
            nodes.append((f"regularizer.{name}", regularizers.get(name)))
    for path, node in nodes:
        schema = OmegaConf.get_type(node) if OmegaConf.is_dict(node) else None
        if schema is None or not dataclasses.is_dataclass(schema):
            continue
        known = [f.name for f in dataclasses.fields(schema) if not f.name.startswith("_")]
        for key in node:
            if key not in known and not str(key).startswith("_"):
                problems.append(f"{path}.{key} is not an option of the {path} config (options: "
                                f"{', '.join(known)}): fix its spelling, without a leading +")


def _check_combinations(cfg: DictConfig, problems: list[str]) -> None:
    """Values that are fine alone but not together."""
    optimizer, model, dataset = cfg.get("optimizer"), cfg.get("model"), cfg.get("dataset")
    if optimizer is not None and optimizer.get("nesterov") and not optimizer.get("momentum", 0) > 0:
        problems.append("optimizer.nesterov=true needs optimizer.momentum > 0 (Nesterov momentum "
                        "is a kind of momentum): set optimizer.momentum=0.9 or optimizer.nesterov=false")
    if model is not None and dataset is not None and model.get("batchnorm") \
            and dataset.get("batch_size") == 1:
        problems.append("model.batchnorm=true needs dataset.batch_size >= 2 (batch norm normalizes "
                        "over the rows of a batch): raise dataset.batch_size or set model.batchnorm=false")


def _leaves(prefix: str, node: dict):
    """(dotted key, value) of every non-dict value; regularizer options nest one level deeper."""
    for k, v in node.items():
        if isinstance(v, dict):
            yield from _leaves(f"{prefix}.{k}", v)
        else:
            yield f"{prefix}.{k}", v


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

