"""IMDB movie reviews (the aclImdb folder layout) as padded token ids for binary sentiment.

The vocabulary is built on the train split only (never on val or test), saved with the run as
vocab.json, and `encode` turns any text into the same ids, so evaluation and prediction reproduce
the training input exactly. Token id 0 is <pad>, 1 is <unk>; sequences are right-padded with 0.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from dlx.data.bundle import Bundle, Spec, holdout, targets
from dlx.data.registry import Encoder
from dlx.errors import DataError

PAD, UNK = "<pad>", "<unk>"  # ids 0 and 1
CLASSES = ("neg", "pos")  # label 0 and 1, as the aclImdb folders are named
URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
MD5 = "7c2ac02c03563afcf9b574c7e56c153a"  # of aclImdb_v1.tar.gz

_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)  # the reviews' HTML line breaks
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")  # words, with inner apostrophes: don't, it's


def tokenize(text: str) -> list[str]:
    """Lowercase, HTML line breaks to spaces, then words of letters and digits."""
    return _WORD.findall(_BREAK.sub(" ", text).lower())


def build_vocab(docs: list[list[str]], max_vocab: int, min_freq: int) -> list[str]:
    """<pad>, <unk>, then the words seen at least min_freq times, most frequent first (ties
    alphabetical), max_vocab entries in all. The list index is the token id."""
    counts = Counter(w for doc in docs for w in doc)
    words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
    return [PAD, UNK] + words[: max_vocab - 2]


def encode(docs: list[list[str]], vocab: list[str], max_len: int) -> torch.Tensor:
    """Token lists -> (N, max_len) int64 ids: unknown words -> 1, cut at max_len, right-padded 0."""
    index = {w: i for i, w in enumerate(vocab)}
    out = np.zeros((len(docs), max_len), dtype=np.int64)
    for i, doc in enumerate(docs):
        ids = [index.get(w, 1) for w in doc[:max_len]]
        out[i, : len(ids)] = ids
    return torch.from_numpy(out)


def imdb(cfg) -> Bundle:
    """aclImdb/{train,test}/{pos,neg}/*.txt: the published test split is kept; validation is
    carved from train (seeded, stratified); the vocabulary comes from the remaining train rows."""
    base = _locate(cfg)
    docs, y = _read(base, "train")
    test_docs, y_test = _read(base, "test")
    train, val = holdout(np.arange(len(y)), y, cfg.val_fraction, cfg.split_seed, stratify=True)
    rest = np.concatenate([train, val])  # train+val in Bundle order, for resplit

    def make(train: np.ndarray, val: np.ndarray | None) -> Bundle:
        vocab = build_vocab([docs[i] for i in train], cfg.max_vocab, cfg.min_freq)
        spec = Spec("binary", (cfg.max_len,), 1, CLASSES, vocab_size=len(vocab))
        pick = lambda rows: (encode([docs[i] for i in rows], vocab, cfg.max_len),  # noqa: E731
                             targets(y[rows], spec))
        lengths = np.array([len(docs[i]) for i in train])
        return Bundle(
            spec, pick(train), pick(val) if val is not None and len(val) else None,
            (encode(test_docs, vocab, cfg.max_len), targets(y_test, spec)),
            info={"n_train": len(train), "n_val": 0 if val is None else len(val),
                  "n_test": len(y_test), "vocab_size": len(vocab), "max_len": cfg.max_len,
                  "train_tokens_median": float(np.median(lengths)),
                  "train_truncated_fraction": float((lengths > cfg.max_len).mean()),
                  "device_bytes": 8 * cfg.max_len * (len(rest) + len(y_test))},  # int64 ids
            artifacts={"vocab.json": {"tokens": vocab, "pad_id": 0, "unk_id": 1,
                                      "max_len": cfg.max_len, "classes": list(CLASSES),
                                      "tokenizer": "dlx.data.text.tokenize"}},
            resplit=lambda a, b: make(rest[a], None if b is None else rest[b]),
        )

    return make(train, val)


def _locate(cfg) -> Path:
    base = Path(cfg.root) / "aclImdb"
    if cfg.download and not base.is_dir():
        from torchvision.datasets.utils import download_and_extract_archive

        try:
            download_and_extract_archive(URL, cfg.root, md5=MD5)
        except Exception as e:  # noqa: BLE001 - no network, a bad archive
            raise DataError(f"cannot download IMDB into {cfg.root}: {e}") from e
    if not base.is_dir():
        raise DataError(f"IMDB not found under {base}: set dataset.root to the folder holding "
                        "aclImdb/, or dataset.download=true to fetch it")
    return base


def _read(base: Path, split: str) -> tuple[list[list[str]], np.ndarray]:
    """Tokenized reviews of one split and their labels (neg 0, pos 1), in file-name order."""
    docs, labels = [], []
    for label, name in enumerate(CLASSES):
        files = sorted((base / split / name).glob("*.txt"))
        if not files:
            raise DataError(f"no review files (*.txt) in {base / split / name}: IMDB needs the "
                            "aclImdb layout {train,test}/{pos,neg}/*.txt under dataset.root")
        for f in files:
            try:
                # interned: each distinct word is stored once, however many reviews hold it
                docs.append([sys.intern(w) for w in tokenize(f.read_text(encoding="utf-8"))])
            except UnicodeDecodeError as e:
                raise DataError(f"{f} is not UTF-8 text (byte {e.start}): re-save it as UTF-8 "
                                "or remove it") from e
            labels.append(label)
    return docs, np.asarray(labels, dtype=np.int64)


REVIEW = "review"  # a served model's input column: the text of one review per row


def encode_reviews(cfg, spec, artifacts):
    """dlx predict's reader for imdb runs: a UTF-8 text file with one review per line (blank
    lines skipped), or reviews in memory (a served model's input: a column `review`, one review
    per row, none of them empty), tokenized and mapped with the run's vocabulary (vocab.json),
    cut/padded to its max_len. Each input is named by its line (in memory: its row) number."""
    vocab, max_len = artifacts["vocab.json"]["tokens"], artifacts["vocab.json"]["max_len"]

    def read(source) -> tuple[torch.Tensor, dict]:  # (not `encode`: that is the function above)
        if isinstance(source, (str, Path)):
            reviews = _lines(Path(source))
        else:
            reviews = _rows(source)
        x = encode([tokenize(text) for _, text in reviews], vocab, max_len)
        return x, {"line" if isinstance(source, (str, Path)) else "row": [n for n, _ in reviews]}

    return Encoder(read, {"columns": {REVIEW: "string"}})


encode_reviews.reads = ("vocab.json",)


def _lines(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        raise DataError(f"no file {path}: pass a text file with one review per line")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text (byte {e.start}): re-save it as UTF-8") from e
    reviews = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    if not reviews:
        raise DataError(f"{path} is empty: write one review per line")
    return reviews


def _rows(source) -> list[tuple[int, str]]:
    """Reviews given in memory: a DataFrame with a `review` column, or a sequence of strings."""
    columns = getattr(source, "columns", None)
    if columns is not None:
        if REVIEW not in columns:
            raise DataError(f"the input has no column '{REVIEW}' (its columns are "
                            f"{', '.join(map(str, columns)) or 'none'}): send one review per row "
                            f"in column '{REVIEW}'")
        source = source[REVIEW]
    texts = list(source)
    if not texts:
        raise DataError(f"the input holds no reviews: send one review per row in column '{REVIEW}'")
    for n, text in enumerate(texts, 1):
        if not isinstance(text, str):
            raise DataError(f"review {n} is {'missing' if text is None else repr(text)}: send the "
                            "text of one review per row")
        if not text.strip():
            raise DataError(f"review {n} is empty: send the text of one review per row")
    return list(enumerate(texts, 1))
