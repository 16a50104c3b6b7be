"""Image datasets: scikit-learn's 8x8 digits, MNIST, Fashion-MNIST and CIFAR-10 through
torchvision, and any ImageFolder.

Pixels stay uint8 (N, C, H, W) on the training device, 1 byte per value; `ImageTransform` turns
each batch into floats there (and augments training batches), so a float copy of the whole set is
never made. MNIST and CIFAR-10 keep their published test split; the validation split is carved
from train (seeded, stratified). An ImageFolder is split train/val/test like a table.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dlx.data.bundle import Bundle, Spec, holdout, targets
from dlx.data.registry import Encoder
from dlx.errors import ConfigError, DataError


class ImageTransform:
    """Bundle.transform for uint8 images, on their device: random crop from a zero-padded copy and
    random horizontal flip (training batches only, drawn per image from torch's global RNG, which
    trainer.seed seeds), then x/255 and, for normalize=standardize, (x - mean) / std per channel."""

    def __init__(self, cfg, channels: int):
        self.pad, self.hflip = cfg.crop_padding, cfg.hflip
        self.stats = None
        if cfg.normalize == "standardize":
            mean, std = (_per_channel(cfg, k, channels) for k in ("mean", "std"))
            self.stats = torch.tensor([mean, std]).view(2, 1, channels, 1, 1)
        self._on: dict[torch.device, torch.Tensor] = {}  # the stats, copied once per device

    def __call__(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        if train and self.pad:
            x = random_crop(x, self.pad)
        if train and self.hflip:
            x = random_hflip(x)
        x = x.float() / 255
        if self.stats is not None:
            if x.device not in self._on:
                self._on[x.device] = self.stats.to(x.device)
            mean, std = self._on[x.device]
            x = (x - mean) / std
        return x


def random_crop(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Each image of the batch cropped back to its size at a random offset of its zero-padded copy
    (torchvision's RandomCrop(padding=pad), one offset per image, in one gather)."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy, dx = (torch.randint(0, 2 * pad + 1, (n, 1, 1, 1), device=x.device) for _ in range(2))
    rows = torch.arange(h, device=x.device).view(1, 1, h, 1) + dy
    cols = torch.arange(w, device=x.device).view(1, 1, 1, w) + dx
    i = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    k = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[i, k, rows, cols]


def random_hflip(x: torch.Tensor) -> torch.Tensor:
    """Each image flipped left-right with probability 1/2."""
    flip = torch.rand(len(x), device=x.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def _per_channel(cfg, key: str, channels: int) -> list[float]:
    values = list(getattr(cfg, key))
    if len(values) == 1:
        return values * channels
    if len(values) != channels:
        raise ConfigError(f"dataset.{key} has {len(values)} values but the images have {channels} "
                          f"channel(s): give one value, or one per channel")
    return values


def _bundle(cfg, x, y: np.ndarray, classes, test=None, take=None, info=None) -> Bundle:
    """uint8 images + int labels -> Bundle. `test`: a published (x, y) test split, kept as it is;
    else dataset.test_fraction of the images is held out. Validation comes out of train.
    `take(name, rows)`: a split's images (default: x[rows])."""
    spec = Spec("multiclass", tuple(x.shape[1:]), len(classes), tuple(classes))
    take = take or (lambda name, r: x[torch.as_tensor(r)])
    rows = np.arange(len(y))
    if test is None:
        rows, held = holdout(rows, y, cfg.test_fraction, cfg.split_seed, stratify=True)
        test = (take("test", held), y[held])
    train, val = holdout(rows, y, cfg.val_fraction, cfg.split_seed, stratify=True)
    pick = lambda name, r: (take(name, r), targets(y[r], spec))  # noqa: E731
    data = Bundle(spec, pick("train", train), pick("val", val) if len(val) else None,
                  (test[0], targets(test[1], spec)), transform=ImageTransform(cfg, x.shape[1]))
    n_bytes = sum(s[0].nbytes for s in (data.train, data.val, data.test) if s is not None)
    data.info = {"n_train": len(train), "n_val": len(val), "n_test": len(test[1]),
                 "image_shape": list(x.shape[1:]), "dtype": "uint8",
                 "device_bytes": n_bytes, **(info or {})}  # on the device (labels aside)
    return data


# ------------------------------------------------------------------------------------ digits
def digits(cfg) -> tuple[np.ndarray, np.ndarray, Spec]:
    """scikit-learn's bundled 8x8 digits as 1x8x8 images scaled to [0, 1] (pixel values 0..16).

    Read from the file scikit-learn ships (sklearn/datasets/data/digits.csv.gz: 64 pixels and the
    label per row), which is what its load_digits() reads, without importing scikit-learn."""
    import gzip
    import importlib.util

    package = importlib.util.find_spec("sklearn")  # finds the package without importing it
    with gzip.open(Path(package.submodule_search_locations[0]) / "datasets" / "data" /
                   "digits.csv.gz") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    x = (table[:, :64] / 16.0).reshape(-1, 1, 8, 8)
    return x, table[:, 64].astype(np.int64), Spec("multiclass", (1, 8, 8), 10,
                                                   tuple(map(str, range(10))))


DIGITS_COLUMNS = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]  # as load_digits' frame


def encode_digits(cfg, spec, artifacts):
    """dlx predict's reader for digits: a CSV with the 64 pixel columns pixel_0_0 ... pixel_7_7
    (values 0..16), or a DataFrame of them (a served model's input) -> 1x8x8 images in [0, 1],
    each named by its data row (1 = the first)."""
    import pandas as pd

    from dlx.data.tabular import numbers, read_table

    def encode(source) -> tuple[torch.Tensor, dict]:
        if isinstance(source, pd.DataFrame):
            what, frame = "the input", source
        else:
            what, frame = source, read_table(source, "utf-8", "pass the path of a CSV to predict on")
        missing = [c for c in DIGITS_COLUMNS if c not in frame.columns]
        if missing:
            raise DataError(f"{what} lacks {len(missing)} of the digits' 64 pixel columns "
                            f"(e.g. {', '.join(missing[:3])}): expected pixel_0_0 ... pixel_7_7")
        values = numbers(what, frame[DIGITS_COLUMNS]).to_numpy(dtype=np.float32) / 16.0
        return torch.as_tensor(values.reshape(-1, 1, 8, 8)), {"row": list(range(1, len(frame) + 1))}

    return Encoder(encode, {"columns": dict.fromkeys(DIGITS_COLUMNS, "double")})


# ------------------------------------------------------------------------ torchvision datasets
def mnist(cfg) -> Bundle:
    """MNIST (60k train + 10k test 1x28x28 digits) from <root>/MNIST/raw."""
    return _mnist_family(cfg, "MNIST")


def fashion_mnist(cfg) -> Bundle:
    """Fashion-MNIST (same shapes as MNIST, 10 clothing classes) from <root>/FashionMNIST/raw."""
    return _mnist_family(cfg, "FashionMNIST")


# the MNIST family's IDX files, as torchvision lays them out under <root>/<name>/raw, and classes
MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
MNIST_CLASSES = {
    "MNIST": [str(d) for d in range(10)],
    "FashionMNIST": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                     "Sneaker", "Bag", "Ankle boot"],
}


def _mnist_family(cfg, name: str) -> Bundle:
    """The IDX files under <root>/<name>/raw, read with numpy: torchvision (its importing costs
    a second and more per run) only fetches them, with dataset.download=true."""
    raw = Path(cfg.root) / name / "raw"
    files = [f for pair in MNIST_FILES.values() for f in pair]
    if not all((raw / f).is_file() for f in files):
        if not cfg.download:
            raise DataError(f"{name} not found under {raw}: set dataset.root to where it is, "
                            "or dataset.download=true to fetch it")
        from torchvision import datasets

        for train in (True, False):
            _open(getattr(datasets, name), cfg, name, raw, train)
    (x, y), (x_test, y_test) = (
        tuple(_read_idx(raw / f, name) for f in MNIST_FILES[split]) for split in ("train", "test"))
    for images, labels, split in ((x, y, "train"), (x_test, y_test, "test")):
        if len(images) != len(labels) or images.ndim != 3:
            raise DataError(f"cannot read {name} from {raw}: its {split} images and labels do not "
                            "match (a truncated or corrupt file? delete it and set "
                            "dataset.download=true)")
    return _bundle(cfg, torch.from_numpy(x).unsqueeze(1), y.astype(np.int64), MNIST_CLASSES[name],
                   test=(torch.from_numpy(x_test).unsqueeze(1), y_test.astype(np.int64)))


def _read_idx(path: Path, name: str) -> np.ndarray:
    """An uncompressed IDX file of unsigned bytes (MNIST's format): a magic number 0x0000080N
    (N dimensions), N big-endian sizes, the data."""
    with path.open("rb") as f:  # the header, then the data read once into a writable array
        head, problem = f.read(4), None
        if len(head) < 4 or head[:3] != b"\x00\x00\x08":
            problem = "it does not start as an IDX file of bytes"
        else:
            ndim = head[3]
            dims = f.read(4 * ndim)
            shape = tuple(int.from_bytes(dims[4 * i: 4 + 4 * i], "big") for i in range(ndim))
            held = path.stat().st_size - 4 - 4 * ndim
            if len(dims) != 4 * ndim or held != int(np.prod(shape)):
                problem = (f"it holds {held} bytes of data for a {shape} array: a truncated or "
                           "corrupt file?")
        if problem:
            raise DataError(f"cannot read {name} from {path}: {problem} (delete it and set "
                            "dataset.download=true)")
        return np.fromfile(f, dtype=np.uint8).reshape(shape)


def cifar10(cfg) -> Bundle:
    """CIFAR-10 (50k train + 10k test 3x32x32 images) from <root>/cifar-10-batches-py."""
    from torchvision.datasets import CIFAR10

    base = Path(cfg.root) / CIFAR10.base_folder
    files = [n for n, _ in CIFAR10.train_list + CIFAR10.test_list] + [CIFAR10.meta["filename"]]
    if not cfg.download and not all((base / f).is_file() for f in files):
        raise DataError(f"CIFAR-10 not found under {base}: set dataset.root to where it is, "
                        "or dataset.download=true to fetch it")
    cls = CIFAR10 if cfg.verify else _unverified(CIFAR10)
    train, test = (_open(cls, cfg, "CIFAR-10", base, flag) for flag in (True, False))
    as_nchw = lambda d: torch.from_numpy(d.data).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    return _bundle(cfg, as_nchw(train), np.asarray(train.targets), train.classes,
                   test=(as_nchw(test), np.asarray(test.targets)))


def _unverified(cls):
    """`cls` with torchvision's md5 checks turned into existence checks (its check_integrity with
    md5=None is os.path.isfile): for copies that are not the published files, dataset.verify=false."""
    return type(f"Unverified{cls.__name__}", (cls,), {
        "train_list": [[name, None] for name, _ in cls.train_list],
        "test_list": [[name, None] for name, _ in cls.test_list],
        "meta": {**cls.meta, "md5": None},
    })


def _open(cls, cfg, name: str, where: Path, train: bool):
    """One split through torchvision; its errors become one line that says what to do."""
    try:
        return cls(cfg.root, train=train, download=cfg.download)
    except RuntimeError as e:
        if "corrupted" in str(e) and not cfg.download:  # CIFAR's md5 check
            raise DataError(f"{name} files under {where} fail torchvision's md5 check (not the "
                            "published files): set dataset.download=true to fetch them again, or "
                            "dataset.verify=false to load these unchecked") from e
        raise DataError(f"cannot read {name} from {where} ({e}): a truncated or corrupt file? "
                        "delete it and set dataset.download=true") from e
    except Exception as e:  # noqa: BLE001 - bad pickles, network errors
        raise DataError(f"cannot read {name} from {where} ({type(e).__name__}: {e}): a truncated or "
                        "corrupt file? delete it and set dataset.download=true") from e


# ------------------------------------------------------------------------------ image folder
def image_folder(cfg) -> Bundle:
    """torchvision's ImageFolder layout, <root>/<class>/<image>: each image to RGB (or grayscale),
    resized to dataset.size, kept uint8; split train/val/test stratified by class."""
    from torchvision import datasets
    from torchvision.transforms import v2

    if cfg.root is None:
        raise ConfigError("dataset.root is not set: dataset=image_folder needs "
                          "dataset.root=<a folder with one sub-folder of images per class>")
    root = Path(cfg.root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist: set dataset.root to a folder with "
                        "one sub-folder of images per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))

    class Folder(datasets.ImageFolder):
        def find_classes(self, directory):  # skips hidden folders (.ipynb_checkpoints, ...)
            return classes, {c: i for i, c in enumerate(classes)}

    if len(classes) < 2:
        raise DataError(f"image folder {root} has {len(classes)} class folder(s) "
                        f"({', '.join(classes) or 'none'}): a classifier needs 2 or more, one "
                        "sub-folder of images per class")
    steps = [v2.PILToTensor()] + ([v2.Grayscale(1)] if cfg.grayscale else [])
    steps.append(v2.Resize(list(cfg.size), antialias=True))
    try:
        folder = Folder(str(root), transform=v2.Compose(steps))
    except FileNotFoundError as e:  # a class folder without any image file
        raise DataError(f"image folder {root}: {e}") from e
    y = np.asarray(folder.targets)
    decode = lambda: _decode(folder)  # noqa: E731
    if not cfg.cache:
        return _bundle(cfg, decode(), y, folder.classes)
    from dlx.data import cache

    stored = cache.Images(cfg, folder.samples, {"grayscale": cfg.grayscale,
                                                "size": list(cfg.size)})
    x = stored.images(decode)
    if cache.fits(x, cfg.in_memory):
        return _bundle(cfg, torch.from_numpy(x), y, folder.classes,
                       info={"cache": str(stored.folder)})
    # too large for memory (or dataset.in_memory=false): each split memory-mapped from a file of
    # its own rows, so batches are read from the page cache as they are sliced
    return _bundle(cfg, x, y, folder.classes, take=stored.split,
                   info={"cache": str(stored.folder), "memory_mapped": True})


def _decode(folder) -> torch.Tensor:
    """Every image of the folder through its transform, in the folder's order: uint8 (N, C, H,
    W). Decoded by torch's DataLoader in one forked worker process per core (threads do not
    help: a small image's decode and resize are mostly Python holding the GIL), in this process
    where it cannot fork workers (a launcher's daemonic worker, a platform that spawns) or has
    one core. An unreadable image is one DataError naming it."""
    import multiprocessing

    from torch.utils.data import DataLoader

    workers = os.cpu_count() or 1
    if workers < 2 or multiprocessing.current_process().daemon \
            or multiprocessing.get_start_method() != "fork":  # a spawned worker would re-import
        workers = 0
    images = []
    loader = DataLoader(_Decoded(folder), batch_size=256, num_workers=workers,
                        collate_fn=_stack, persistent_workers=False)
    for batch in loader:
        if isinstance(batch, str):  # a worker's one line about an unreadable image
            raise DataError(batch)
        images.append(batch)
    return torch.cat(images)


class _Decoded(torch.utils.data.Dataset):
    """An ImageFolder's images through its transform; an unreadable one becomes the line that
    says so (a DataLoader worker's exception would reach this process as a traceback)."""

    def __init__(self, folder):
        self.folder = folder

    def __len__(self) -> int:
        return len(self.folder.samples)

    def __getitem__(self, i: int):
        path = self.folder.samples[i][0]
        try:
            return self.folder.transform(self.folder.loader(path))
        except Exception as e:  # noqa: BLE001 - PIL's errors for unreadable files
            return f"cannot read image {path} ({type(e).__name__}: {e}): fix or remove it"


def _stack(items: list):
    """A batch of decoded images, or the first unreadable one's line."""
    bad = next((i for i in items if isinstance(i, str)), None)
    return bad if bad is not None else torch.stack(items)


# ------------------------------------------------------------------------------ dlx predict
def encode_images(cfg, spec, artifacts):
    """dlx predict's reader for image runs: an image file, or a folder searched recursively for
    images (torchvision's IMG_EXTENSIONS), read as an ImageFolder reads them (RGB), converted to
    the run's channels and resized to its input size: uint8 (N, C, H, W), like the splits; the
    run's batch transform then scales/normalizes them. Each input is named by its file. A served
    model takes the images in memory instead, as read from their files: arrays (C, H, W) of
    whole numbers 0..255 of any size, C = 3 (RGB) or 1 (grayscale), each converted and resized
    the same way."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, pil_loader
    from torchvision.transforms import v2

    channels, height, width = spec.input_shape
    to_tensor = v2.PILToTensor()
    convert = v2.Compose([*([v2.Grayscale(1)] if channels == 1 else []),
                          v2.Resize([height, width], antialias=True)])

    def encode(source) -> tuple[torch.Tensor, dict]:
        if not isinstance(source, (str, os.PathLike)):
            return torch.stack([convert(x) for x in _arrays(source, channels)]), \
                {"row": list(range(1, len(source) + 1))}
        source = Path(source)
        if source.is_dir():
            files = sorted(p for p in source.rglob("*") if p.is_file()
                           and p.suffix.lower() in IMG_EXTENSIONS
                           and not any(part.startswith(".") for part in p.relative_to(source).parts))
            if not files:
                raise DataError(f"folder {source} holds no images "
                                f"({', '.join(e.lstrip('.') for e in IMG_EXTENSIONS)}): pass an "
                                "image file or a folder of images")
        elif source.is_file():
            files = [source]
        else:
            raise DataError(f"no file or folder {source}: pass an image or a folder of images")
        images = []
        for f in files:
            try:
                images.append(convert(to_tensor(pil_loader(str(f)))))
            except Exception as e:  # noqa: BLE001 - PIL's errors for unreadable files
                raise DataError(f"cannot read image {f} ({type(e).__name__}: {e}): pass a png or "
                                "jpg file, or remove it from the folder") from e
        return torch.stack(images), {"file": [str(f) for f in files]}

    # any array: its images are checked here (sizes may differ, as in a folder), so that a
    # wrong one is dlx's one line, not MLflow's schema error
    return Encoder(encode, {"tensor": "object", "shape": [-1]}, ImageTransform(cfg, channels))


def _arrays(images, channels: int) -> list[torch.Tensor]:
    """Images given in memory (an array (N, C, H, W), or a sequence of (C, H, W) arrays of any
    sizes, as MLflow hands over a JSON list) as (C, H, W) uint8 tensors with 3 channels (RGB)
    or the run's `channels`: whole numbers 0..255, as read from the image files."""
    expected = ("send images as read from their files: (N, C, H, W) arrays of whole numbers "
                "0..255, C = 3 (RGB) or 1 (grayscale), any height and width")
    if isinstance(images, np.ndarray) and images.dtype != object and images.ndim != 4:
        raise DataError(f"the input is an array of shape {images.shape}: {expected}")
    if len(images) == 0:
        raise DataError(f"the input holds no images: {expected}")
    out = []
    for i, image in enumerate(images, 1):
        try:
            x = np.asarray(image if not isinstance(image, torch.Tensor) else image.cpu())
            if x.dtype == object:  # parsed from JSON: numbers, or lists where sizes differ
                x = np.array(x.tolist(), dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"image {i} is not an array of numbers: {expected}") from None
        if x.ndim != 3 or x.shape[0] not in (1, 3) or 0 in x.shape:
            raise DataError(f"image {i} has shape {tuple(x.shape)}: {expected}")
        if x.dtype != np.uint8:
            if x.dtype.kind not in "iuf" or not np.all((x >= 0) & (x <= 255) & (x == np.round(x))):
                raise DataError(f"image {i} holds values other than whole numbers 0..255 "
                                f"({x.dtype}): {expected}")
            x = x.astype(np.uint8)
        x = torch.tensor(x)  # a copy: MLflow hands over read-only arrays
        if x.shape[0] == 1 and channels == 3:  # a grayscale image, as PIL converts it to RGB
            x = x.expand(3, -1, -1)
        out.append(x.contiguous())
    return out
