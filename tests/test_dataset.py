"""Datasets end to end: tiny copies in the real on-disk formats (MNIST IDX files, CIFAR-10 python
batches, aclImdb folders, CSV tables, an ImageFolder of PNGs), trained as `dlx train` trains them
(dlx.run.train, in this process), then the run's record read back: accuracy, split sizes, the
saved vocabulary and preprocessing. Every loader hands over tensors of the shapes and dtypes the
Bundle/Spec contract promises; bad data is one clear line through the real `dlx train`."""

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from fixtures.datasets import (
    make_cifar10,
    make_csv,
    make_csv_empty,
    make_csv_ragged,
    make_image_folder,
    make_imdb,
    make_mnist,
    make_mnist_truncated,
    make_nonutf8_text,
)
from omegaconf import OmegaConf

from dlx.config.dataset import CIFAR10Config, CSVConfig, FashionMNISTConfig, MNISTConfig
from dlx.data import registry as loader
from dlx.data import text, vision
from dlx.errors import DataError


def _artifact(run, name):
    return Path(run.info.artifact_uri.removeprefix("file://")) / name


def _json(run, name):
    return json.loads(_artifact(run, name).read_text())


def _one_run(dlx):
    (run,) = dlx.runs()
    assert run.info.status == "FINISHED"
    return run


# ----------------------------------------------------------------------------------- images
def test_mnist_keeps_the_published_test_split_and_uint8_pixels(dlx, tmp_path):
    root = make_mnist(tmp_path / "data", n_train=300, n_test=100)
    dlx.train_here("dataset=mnist", f"dataset.root={root}", "trainer.epochs=3", "trainer.device=cpu")
    run = _one_run(dlx)
    assert run.data.metrics["test_accuracy"] >= 0.9, run.data.metrics
    info = _json(run, "data.json")
    # the 100 t10k images are the test split; validation (10%) comes out of the 300 train images
    assert (info["n_train"], info["n_val"], info["n_test"]) == (270, 30, 100)
    assert info["image_shape"] == [1, 28, 28] and info["dtype"] == "uint8"
    assert info["device_bytes"] == 400 * 28 * 28  # one byte per pixel, all splits


def test_fashion_mnist_reads_its_own_folder_and_class_names(tmp_path):
    root = make_mnist(tmp_path, n_train=100, n_test=50, name="FashionMNIST")
    data = _load(FashionMNISTConfig, root=str(root), val_fraction=0.2)
    assert data.spec.class_names[0] == "T-shirt/top" and data.spec.input_shape == (1, 28, 28)
    assert (len(data.train[0]), len(data.val[0]), len(data.test[0])) == (80, 20, 50)
    assert data.train[0].dtype == torch.uint8
    # stratified: every class keeps its share of the validation split
    assert torch.bincount(data.val[1], minlength=10).tolist() == [2] * 10
    with pytest.raises(DataError, match="FashionMNIST not found under"):
        _load(FashionMNISTConfig, root=str(tmp_path / "elsewhere"))


def test_cifar10_trains_with_augmentation_on_the_device(dlx, tmp_path):
    root = make_cifar10(tmp_path / "data", n_train=300, n_test=100)
    dlx.train_here("dataset=cifar10", f"dataset.root={root}", "dataset.verify=false",
                   "dataset.crop_padding=4", "dataset.hflip=true", "trainer.epochs=4")
    run = _one_run(dlx)
    assert run.data.metrics["test_accuracy"] >= 0.8, run.data.metrics
    assert _json(run, "data.json")["n_test"] == 100
    assert run.data.params["dataset.normalize"] == "standardize"  # cifar10.yaml's default


def test_image_folder_is_grayscaled_resized_and_split(dlx, tmp_path):
    root = make_image_folder(tmp_path / "shapes", n_per_class=30)
    dlx.train_here("dataset=image_folder", f"dataset.root={root}", "trainer.epochs=20",
                   "dataset.batch_size=16")
    run = _one_run(dlx)
    assert run.data.metrics["test_accuracy"] >= 0.6, run.data.metrics  # chance: 1/3
    info = _json(run, "data.json")
    assert info["image_shape"] == [1, 28, 28]
    assert (info["n_train"], info["n_val"], info["n_test"]) == (64, 8, 18)  # 90 images, 20% / 10%
    report = _json(run, "classification_report.json")
    assert {"circle", "square", "triangle"} <= set(report)


def _cfg(*overrides: str):
    """An image_folder dataset node with `dataset.key=value` overrides, as composed."""
    from dlx.config.dataset import ImageFolderConfig

    keys = [o.removeprefix("dataset.") for o in overrides if o != "dataset=image_folder"]
    return OmegaConf.merge(OmegaConf.structured(ImageFolderConfig), OmegaConf.from_dotlist(keys))


def test_image_folder_is_decoded_once_then_read_from_its_cache(tmp_path, monkeypatch):
    """The decoded images are stored once per (files, preprocessing); a later load reads them
    back without decoding, memory-mapped splits give the same tensors, and a changed file or
    other preprocessing is a new entry."""
    root = make_image_folder(tmp_path / "shapes", n_per_class=12)
    base = ["dataset=image_folder", f"dataset.root={root}", f"dataset.cache_dir={tmp_path / 'c'}"]
    first = loader.load(_cfg(*base))
    entries = list((tmp_path / "c" / "image_folder").iterdir())
    assert len(entries) == 1 and (entries[0] / "images.npy").is_file()
    monkeypatch.setattr(vision, "_decode", lambda folder: pytest.fail("decoded again"))
    again = loader.load(_cfg(*base))
    mapped = loader.load(_cfg(*base, "dataset.in_memory=false"))
    assert mapped.info["memory_mapped"] and "memory_mapped" not in again.info
    for split in ("train", "val", "test"):
        for other in (again, mapped):
            assert torch.equal(getattr(first, split)[0], getattr(other, split)[0])
            assert torch.equal(getattr(first, split)[1], getattr(other, split)[1])
    monkeypatch.undo()
    loader.load(_cfg(*base, "dataset.size=[20,20]"))  # other preprocessing: decoded again
    next((root / "circle").iterdir()).touch()  # a file changed (mtime): decoded again
    loader.load(_cfg(*base))
    assert len(list((tmp_path / "c" / "image_folder").iterdir())) == 3
    uncached = loader.load(_cfg(*base[:-1], "dataset.cache=false"))
    assert torch.equal(uncached.train[0], first.train[0]) and "cache" not in uncached.info


def test_random_crop_matches_a_per_image_crop_of_the_padded_image():
    torch.manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    torch.manual_seed(1)
    out = vision.random_crop(x, 2)
    torch.manual_seed(1)  # the same draws, one image at a time
    dy, dx = (torch.randint(0, 5, (16, 1, 1, 1)) for _ in range(2))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(16):
        y0, x0 = int(dy[i]), int(dx[i])
        assert torch.equal(out[i], padded[i, :, y0 : y0 + 8, x0 : x0 + 8])
    assert out.dtype == torch.uint8 and len({(int(a), int(b)) for a, b in zip(dy, dx)}) > 1


def test_image_transform_scales_standardizes_and_augments_only_training_batches():
    cfg = OmegaConf.structured(CIFAR10Config(normalize="standardize", hflip=True, crop_padding=0))
    t = vision.ImageTransform(cfg, channels=3)
    x = torch.full((64, 3, 4, 4), 255, dtype=torch.uint8)
    x[:, :, :, 0] = 0  # a dark left column: a flip moves it right
    evaluated = t(x, train=False)
    mean, std = torch.tensor(cfg.mean), torch.tensor(cfg.std)
    assert torch.allclose(evaluated[:, :, 0, 1], (1 - mean) / std)
    assert torch.equal(t(x, train=False), evaluated)  # no randomness outside training
    flipped = (t(x, train=True)[:, 0, 0, 0] > 0).sum()  # the dark column left the left edge
    assert 10 < flipped < 54


# ------------------------------------------------------------------------------------- text
def test_imdb_vocabulary_comes_from_train_only_and_is_saved(dlx, tmp_path):
    root = make_imdb(tmp_path / "data", n_per_split_class=40)
    # a word only the test split holds, and one only the train split holds
    (root / "aclImdb/test/pos/999_9.txt").write_text("zyzzyva zyzzyva zyzzyva great film")
    (root / "aclImdb/train/pos/999_9.txt").write_text("trainword trainword trainword great film")
    dlx.train_here("dataset=imdb", f"dataset.root={root}", "model=lstm", "optimizer.lr=0.01",
                   "trainer.epochs=10", "dataset.max_len=40", "dataset.batch_size=16")
    run = _one_run(dlx)
    assert run.data.metrics["test_accuracy"] >= 0.75, run.data.metrics  # chance: 1/2
    vocab = _json(run, "vocab.json")
    tokens = vocab["tokens"]
    assert tokens[:2] == ["<pad>", "<unk>"] and vocab["max_len"] == 40
    assert "zyzzyva" not in tokens and "trainword" in tokens and "great" in tokens
    info = _json(run, "data.json")
    assert info["vocab_size"] == len(tokens) and info["n_test"] == 81
    assert info["n_train"] + info["n_val"] == 81 and info["n_val"] == 9


def test_tokenize_and_encode_reproduce_the_training_input():
    assert text.tokenize("A GREAT film.<br /><br />Don't miss it!") == \
        ["a", "great", "film", "don't", "miss", "it"]
    vocab = text.build_vocab([["b", "a", "b"], ["c", "b", "a"]], max_vocab=4, min_freq=2)
    assert vocab == ["<pad>", "<unk>", "b", "a"]  # c is seen once: <unk>
    ids = text.encode([["a", "c"], ["b"] * 5], vocab, max_len=3)
    assert ids.dtype == torch.int64
    assert ids.tolist() == [[3, 1, 0], [2, 2, 2]]  # unknown -> 1, right-padded with 0, cut at 3


# ------------------------------------------------------------------------------------- csv
def test_csv_classification_with_missing_values_outliers_and_categoricals(dlx, tmp_path):
    path = make_csv(tmp_path / "table.csv", n=300)
    dlx.train_here("dataset=csv", f"dataset.path={path}", "model=mlp", "trainer.epochs=30")
    run = _one_run(dlx)
    assert run.data.metrics["test_accuracy"] >= 0.85, run.data.metrics  # chance: 1/3
    pre = _json(run, "preprocessing.json")
    assert pre["numeric_columns"] == ["f0", "f1", "f2", "f3"]
    assert pre["categorical_columns"] == ["color"] and pre["task"] == "multiclass"
    assert pre["features"] == ["f0", "f1", "f2", "f3", "color_blue", "color_green", "color_red"]

    # fitted on the train split only: the scaler's mean is the train rows' mean, not all rows'
    df = pd.read_csv(path)
    splits = _json(run, "splits.json")
    assert len(splits["train"]) + len(splits["val"]) + len(splits["test"]) == 300
    train, test = df.iloc[splits["train"]], df.iloc[splits["test"]]
    for col in ("f0", "f1"):
        fitted = pre["fitted"]["scale"]["mean"][col]
        assert fitted == pytest.approx(train[col].mean(), abs=1e-9)
        assert fitted == pytest.approx(pre["fitted"]["impute"][col], abs=1e-9)
        assert abs(fitted - df[col].mean()) > 1e-4 and abs(fitted - test[col].mean()) > 1e-3

    # the saved Pipeline turns raw rows into the model's inputs
    pipe = joblib.load(_artifact(run, "preprocessing.joblib"))
    x = pipe.transform(test.drop(columns="label"))
    assert x.shape == (len(test), 7) and not np.isnan(x).any()
    assert abs(x[:, 0].mean()) < 0.5 and abs(pipe.transform(train.drop(columns="label"))[:, 0].mean()) < 1e-6


def test_csv_regression_is_inferred_and_iqr_outliers_are_dropped_from_train(dlx, tmp_path):
    path = make_csv(tmp_path / "prices.csv", n=300, task="regression")
    dlx.train_here("dataset=csv", f"dataset.path={path}", "dataset.outliers=iqr", "model=linear",
                   "optimizer=sgd", "optimizer.lr=0.05", "trainer.epochs=50",
                   "trainer.monitor=val_r2", "trainer.monitor_mode=max")
    run = _one_run(dlx)
    assert run.data.metrics["test_r2"] >= 0.9, run.data.metrics
    assert _json(run, "data.json")["task"] == "regression"
    lo, hi = _json(run, "preprocessing.json")["fitted"]["fences"]["f3"]
    assert -10 < lo < 0 < hi < 10  # Tukey's fences from the train quartiles, not the 1e4 outliers
    assert _json(run, "splits.json")["dropped"]["outliers_train"] >= 1


# ------------------------------------------------------------------------------- bad data
def _aclimdb_without_files(root: Path) -> Path:
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            (root / "aclImdb" / split / label).mkdir(parents=True)
    return root


def _with_junk(root: Path) -> Path:
    make_image_folder(root, n_per_class=3)
    (root / "square" / "junk.png").write_bytes(b"not an image")
    return root


BAD = {
    "missing root": (lambda d: ["dataset=mnist", f"dataset.root={d / 'nowhere'}"],
                     ("MNIST not found under {d}/nowhere/MNIST/raw: set dataset.root to where it "
                     "is, or dataset.download=true to fetch it")),
    "csv without the target column": (
        lambda d: ["dataset=csv", f"dataset.path={make_csv(d / 't.csv', n=30)}", "dataset.target=price"],
        "has no column 'price' (dataset.target): its columns are f0, f1, f2, f3, color, label"),
    "csv with a text regression target": (
        lambda d: ["dataset=csv", f"dataset.path={make_csv(d / 't.csv', n=30)}",
                   "dataset.target=color", "dataset.task=regression"],
        "target column 'color' holds non-numeric values"),
    "empty csv": (lambda d: ["dataset=csv", f"dataset.path={make_csv_empty(d / 'e.csv')}"],
                  "e.csv is empty"),
    "image folder with one class": (
        lambda d: ["dataset=image_folder",
                   f"dataset.root={make_image_folder(d / 'one', classes=('circle',), n_per_class=3)}"],
        "has 1 class folder(s) (circle): a classifier needs 2 or more"),
    "image folder with an unreadable image": (
        lambda d: ["dataset=image_folder", f"dataset.root={_with_junk(d / 'junk')}"],
        "cannot read image {d}/junk/square/junk.png (UnidentifiedImageError"),
    "text folder with no files": (
        lambda d: ["dataset=imdb", f"dataset.root={_aclimdb_without_files(d / 'imdb')}"],
        "no review files (*.txt) in"),
    "max_len 0": (lambda d: ["dataset=imdb", "dataset.max_len=0"], "dataset.max_len=0 must be > 0"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_data_fails_with_one_clear_line(dlx, tmp_path, case):
    overrides, message = BAD[case]
    proc = dlx.train(*overrides(tmp_path), "trainer.epochs=1", check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlx: error: "), proc.stderr
    assert message.format(d=tmp_path) in lines[0], lines[0]
    assert all(r.info.status != "RUNNING" for r in dlx.runs())


def _load(schema, **options):
    return loader.load(OmegaConf.structured(schema(**options)))


@pytest.mark.parametrize("make,schema,options,message", [
    (lambda d: make_mnist_truncated(d, n_train=60, n_test=20), MNISTConfig, {},
     "cannot read MNIST"),
    (lambda d: make_cifar10(d, n_train=50, n_test=10), CIFAR10Config, {},
     ("fail torchvision's md5 check (not the published files): set dataset.download=true to fetch "
     "them again, or dataset.verify=false to load these unchecked")),
    (lambda d: make_csv_ragged(d / "r.csv"), CSVConfig, {}, "is malformed (Error tokenizing data"),
    (lambda d: make_nonutf8_text(d / "n.csv"), CSVConfig, {}, "is not utf-8 text (byte"),
    (lambda d: make_csv_empty(d / "h.csv", header_only=True), CSVConfig, {},
     "has a header but no data rows"),
], ids=["truncated idx", "cifar md5", "ragged csv", "non-utf8 csv", "header-only csv"])
def test_more_bad_files_raise_one_line_data_errors(tmp_path, make, schema, options, message):
    made = make(tmp_path)
    where = {"path": str(made)} if schema is CSVConfig else {"root": str(made)}
    with pytest.raises(DataError) as e:
        _load(schema, **where, **options)
    assert message in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------------- the Bundle/Spec contract
def _assert_tensors_follow_the_spec(data) -> None:
    """What every model and loss relies on (dlx/data/bundle.py): features float32, or int64 token
    ids when spec.vocab_size > 0 (images may be stored as uint8: the batch transform makes them
    float32); targets long (N,) in [0, classes) for multiclass, float32 (N, 1) for binary (0/1)
    and regression, the inputs themselves for reconstruction; x and y of a split equally long."""
    import torch

    spec = data.spec
    for name in ("train", "val", "test"):
        part = getattr(data, name)
        if part is None:
            continue
        x, y = part
        assert len(x) == len(y) > 0, name
        assert tuple(x.shape[1:]) == tuple(spec.input_shape), (name, x.shape, spec.input_shape)
        if spec.vocab_size > 0:
            assert x.dtype == torch.int64 and 0 <= int(x.min()) and int(x.max()) < spec.vocab_size
        else:
            assert x.dtype in (torch.float32, torch.uint8), (name, x.dtype)
            assert data.batch(x[:4], train=False).dtype == torch.float32, name
        if spec.task == "multiclass":
            assert y.dtype == torch.int64 and y.shape == (len(x),), (name, y.dtype, y.shape)
            assert 0 <= int(y.min()) and int(y.max()) < spec.num_outputs
        elif spec.task in ("binary", "regression"):
            assert y.dtype == torch.float32 and y.shape == (len(x), 1), (name, y.dtype, y.shape)
            if spec.task == "binary":
                assert set(y.unique().tolist()) <= {0.0, 1.0}
        else:
            assert spec.task == "reconstruction"
            assert y.dtype == torch.float32 and torch.equal(y, data.batch(x, train=False))


@pytest.mark.parametrize("task,vocab", [("multiclass", 0), ("binary", 0), ("regression", 0),
                                        ("binary", 1000)], ids=["multiclass", "binary", "regression",
                                                                "token ids"])
def test_split_follows_the_spec_contract_and_is_disjoint_and_complete(task, vocab):
    from dlx.data.bundle import Spec, split

    n = 200
    rng = np.random.default_rng(0)
    rows = np.arange(n)
    # column 0 is the row number (a token id < vocab too), so each split says which rows it holds
    x = np.stack([rows, rng.integers(2, 50, n)], axis=1)
    y = {"multiclass": rows % 3, "binary": rows % 2, "regression": rng.normal(size=n)}[task]
    spec = Spec(task, (2,), 3 if task == "multiclass" else 1, vocab_size=vocab)
    data = split(x if vocab else x.astype(np.float64), y, spec, 0.2, 0.1, 42)
    _assert_tensors_follow_the_spec(data)
    held = {name: getattr(data, name)[0][:, 0].long().numpy() for name in ("train", "val", "test")}
    assert sorted(np.concatenate(list(held.values()))) == list(range(n))  # complete, disjoint
    assert (len(held["test"]), len(held["val"])) == (40, 16)  # ceil(0.2 * 200), ceil(0.1 * 160)
    for name, part_rows in held.items():  # each target travels with its row
        want = np.asarray(y[part_rows], dtype=np.float32 if task != "multiclass" else np.int64)
        assert np.array_equal(getattr(data, name)[1].numpy().reshape(len(part_rows)), want), name
    assert data.info == {"n_train": 144, "n_val": 16, "n_test": 40}


@pytest.mark.parametrize("name,rows", [("digits", 1797), ("synthetic_linear", 100),
                                       ("synthetic_logistic", 200), ("synthetic_sequence", 100)])
def test_offline_datasets_follow_the_spec_contract(name, rows):
    from fixtures.runs import compose

    cfg = compose(f"dataset={name}").dataset
    if "n_samples" in cfg:
        rows = cfg.n_samples
    data = loader.load(cfg)
    _assert_tensors_follow_the_spec(data)
    sizes = [len(part[0]) for part in (data.train, data.val, data.test) if part is not None]
    assert sum(sizes) == rows
    assert (data.info["n_train"], data.info["n_test"]) == (len(data.train[0]), len(data.test[0]))
    if name == "digits":  # and as an autoencoder reads it: targets are the (float) inputs
        recon = data.for_reconstruction()
        assert recon.spec.task == "reconstruction" and recon.spec.num_outputs == 64
        _assert_tensors_follow_the_spec(recon)
