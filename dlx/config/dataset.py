"""conf/dataset: one schema per dataset (dlx/data/ reads it). Every dataset is split
train/val/test with a fixed seed; TASK says what it asks of a model when that is known before
reading it (None: the data decides, e.g. a CSV with task=auto)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, List, Optional

from omegaconf import MISSING

from dlx.config.fields import (SWITCHES, at_least, fraction, matches, non_negative, one_of,
                               path, positive, seed, sizes)


def _mean(default):
    return matches(default, lambda v: len(v) > 0, "must hold one value, or one per channel")


def _std(default):
    return sizes(default, "values")


@dataclass
class DatasetConfig:
    name: str = MISSING  # the reader in dlx/data/registry.py
    batch_size: int = positive(32)  # Keras' default, which the source material uses
    test_fraction: float = fraction(0.2)  # held out once; never seen by training or model selection
    val_fraction: float = fraction(0.1, low_open=False)  # of what remains after the test split; 0: none
    split_seed: int = seed(42)  # the source material's seed; fixed so sweeps share one split
    TASK: ClassVar[Optional[str]] = "multiclass"  # regression | binary | multiclass | None


@dataclass
class SyntheticConfig(DatasetConfig):
    """The source's small synthetic sets: n_samples points drawn with `seed`."""

    batch_size: int = positive(16)
    n_samples: int = positive(100)
    seed: int = seed(0)  # draws the points


@dataclass
class SyntheticLinearConfig(SyntheticConfig):
    """y = weight * x + bias + N(0, noise^2): the source's 100 x 1 regression points."""

    name: str = "synthetic_linear"
    x_min: float = 0.0  # x is uniform in [x_min, x_max)
    x_max: float = 1.0
    weight: float = 2.0
    bias: float = 1.0
    noise: float = non_negative(0.1)  # std of the Gaussian noise added to y
    TASK: ClassVar[Optional[str]] = "regression"


@dataclass
class SyntheticLogisticConfig(SyntheticConfig):
    """100 x 2 points uniform in the unit square, label x0 + x1 > 1."""

    name: str = "synthetic_logistic"
    TASK: ClassVar[Optional[str]] = "binary"


@dataclass
class SyntheticSequenceConfig(SyntheticConfig):
    """Random token sequences with binary labels: the source's 100 x 10 RNN example."""

    name: str = "synthetic_sequence"
    length: int = positive(10)  # tokens per sequence
    min_length: int = non_negative(0)  # > 0: lengths uniform in [min_length, length], right-padded
    vocab_size: int = at_least(1000, 3, " (ids 0 and 1 are <pad> and <unk>)")  # tokens 2..vocab_size-1
    labels: str = one_of("noise", "noise", "signal")  # noise: coin flips (the source) | signal:
    #   1 iff the sequence holds a trigger token
    TASK: ClassVar[Optional[str]] = "binary"


# ------------------------------------------------------------------ images (dlx/data/vision.py)
@dataclass
class DigitsConfig(DatasetConfig):
    """scikit-learn's bundled 8x8 digits: 1797 images in [0, 1], 10 classes, offline."""

    name: str = "digits"


@dataclass
class ImageConfig(DatasetConfig):
    """Image datasets keep uint8 pixels on the device; each batch is scaled/augmented there."""

    normalize: str = one_of("scale", "scale", "standardize")  # scale: x/255 | standardize:
    #   (x/255 - mean) / std per channel
    mean: List[float] = _mean([0.5])
    std: List[float] = _std([0.5])
    crop_padding: int = non_negative(0)  # augmentation: > 0 crops each training image at random
    #   from a zero-padded copy (4 is usual for CIFAR-10)
    hflip: bool = False  # augmentation: flip each training image left-right with probability 1/2


@dataclass
class MNISTConfig(ImageConfig):
    """60k train + 10k test 28x28 digits; the published test split is kept."""

    name: str = "mnist"
    batch_size: int = positive(64)  # the source's PyTorch MNIST example
    root: str = path("data")  # torchvision's layout: <root>/MNIST/raw/{train,t10k}-*-ubyte
    download: bool = False  # offline by default; true lets torchvision fetch the files into root
    mean: List[float] = _mean([0.1307])  # train stats
    std: List[float] = _std([0.3081])


@dataclass
class FashionMNISTConfig(MNISTConfig):
    """60k + 10k 28x28 clothing images, laid out as MNIST under <root>/FashionMNIST/raw."""

    name: str = "fashion_mnist"
    mean: List[float] = _mean([0.2860])
    std: List[float] = _std([0.3530])


@dataclass
class CIFAR10Config(ImageConfig):
    """50k train + 10k test 32x32 colour images; the published test split is kept."""

    name: str = "cifar10"
    batch_size: int = positive(64)  # the source's CIFAR-10 example
    root: str = path("data")  # torchvision's layout: <root>/cifar-10-batches-py/
    download: bool = False  # offline by default; true lets torchvision fetch the archive into root
    verify: bool = True  # torchvision's md5 check of the files; false loads other copies unchecked
    normalize: str = one_of("standardize", "scale", "standardize")  # with the train-set stats below
    mean: List[float] = _mean([0.4914, 0.4822, 0.4465])
    std: List[float] = _std([0.2470, 0.2435, 0.2616])


@dataclass
class ImageFolderConfig(ImageConfig):
    """Your images, one sub-folder per class (torchvision's ImageFolder layout)."""

    name: str = "image_folder"
    root: Optional[str] = path(None)  # required: a folder with one sub-folder of images per class
    grayscale: bool = True  # the source's preprocessing: grayscale, resize to 28x28, scale 1/255
    size: List[int] = matches([28, 28], lambda v: len(v) == 2 and all(x > 0 for x in v),
                              "must be [height, width] > 0")
    cache: bool = True  # decoded images kept in a cache keyed by the files and the preprocessing
    #   (decoded in parallel once; a later run reads them back in well under a second)
    cache_dir: Optional[str] = path(None)  # where: null -> $XDG_CACHE_HOME/dlx, else ~/.cache/dlx
    in_memory: str = one_of("auto", *SWITCHES)  # auto: in memory when the decoded images take under
    #   half the free memory, else memory-mapped from the cache (false: always memory-mapped)


@dataclass
class IMDBConfig(DatasetConfig):
    """25k train + 25k test movie reviews (aclImdb), positive/negative."""

    name: str = "imdb"
    batch_size: int = positive(64)
    root: str = path("data")  # holds aclImdb/{train,test}/{pos,neg}/*.txt
    download: bool = False  # offline by default; true fetches aclImdb_v1.tar.gz (84 MB) into root
    max_len: int = positive(200)  # tokens per review: longer ones are cut, shorter ones right-padded
    max_vocab: int = at_least(20000, 3, " (<pad>, <unk> and at least one word)")  # train words
    min_freq: int = positive(2)  # rarer train words become <unk>
    TASK: ClassVar[Optional[str]] = "binary"


MISSING_VALUES = ("drop", "mean", "median", "most_frequent", "interpolate")


@dataclass
class CSVConfig(DatasetConfig):
    """Any table with a header row; `target` is predicted from every other column.
    Preprocessing is scikit-learn, fitted on the train split only and saved with the run."""

    name: str = "csv"
    path: Optional[str] = path(None)  # required: a comma-separated file with a header row
    target: str = "label"  # the column to predict; every other column is a feature
    task: str = one_of("auto", "auto", "classification", "regression")  # auto: few integer or
    #   text values -> classification, other numbers -> regression
    max_classes: int = at_least(20, 2)  # auto: a target with at most this many values is a class
    encoding: str = "utf-8"
    missing: str = one_of("mean", *MISSING_VALUES)  # text columns: most frequent
    outliers: str = one_of("none", "none", "clip", "iqr")  # clip: to mean +- z_threshold*std |
    #   iqr: drop train rows outside Tukey's fences and clip val/test values to them
    z_threshold: float = positive(3.0)
    iqr_factor: float = positive(1.5)  # fences at Q1 - f*IQR and Q3 + f*IQR
    scaling: str = one_of("standard", "none", "minmax", "standard")  # standard: z-score
    feature_selection: str = one_of("none", "none", "variance", "kbest")  # kbest: mutual information
    variance_threshold: float = non_negative(0.0)  # variance: drop features not above this
    k_best: int = positive(10)  # kbest: features kept
    TASK: ClassVar[Optional[str]] = None  # `task`: classification (binary/multiclass) or regression


@dataclass
class CustomConfig(DatasetConfig):
    """Your own data: `_target_` names a function of your module that returns (X, y) arrays or
    tensors, {"train": (X, y), "test": (X, y), ["val": (X, y)]}, or a torch Dataset; or a
    Dataset subclass. Every key not listed here is passed to it (+dataset.n=500). The rows are
    split, the task inferred and the options below applied as for dlx's own data
    (dlx/data/custom.py; docs/extending.md)."""

    name: str = "custom"
    _target_: str = MISSING  # e.g. mydata.blobs (the trust rule: dlx/config/targets.py)
    task: str = one_of("auto", "auto", "classification", "regression")  # auto: integer, bool or
    #   text labels (at most max_classes values) -> classification, other numbers -> regression
    max_classes: int = at_least(20, 2)  # auto: integer labels with at most this many values are classes
    scaling: str = one_of("none", "none", "minmax", "standard")  # 2-D features only; fitted on
    #   the train rows (standard: z-score)
    vocab_size: int = non_negative(0)  # > 0: X holds token ids in [0, vocab_size) (0 = <pad>)
    TASK: ClassVar[Optional[str]] = None  # the labels decide (or `task`)
    OPEN: ClassVar[bool] = True  # other keys are the function's arguments


OPTIONS = {
    "digits": DigitsConfig, "synthetic_linear": SyntheticLinearConfig,
    "synthetic_logistic": SyntheticLogisticConfig, "synthetic_sequence": SyntheticSequenceConfig,
    "mnist": MNISTConfig, "fashion_mnist": FashionMNISTConfig, "cifar10": CIFAR10Config,
    "image_folder": ImageFolderConfig, "imdb": IMDBConfig, "csv": CSVConfig,
    "custom": CustomConfig,
}
