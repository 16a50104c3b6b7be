"""Decoded images kept on disk (dataset=image_folder, dataset.cache=true): decoding thousands of
JPEGs costs seconds of CPU that every run, every sweep process and every cross-validation worker
would otherwise pay again.

A cache entry is a folder named by a hash of what the pixels depend on: each image file's path,
size and modification time, its class, and the preprocessing (grayscale, size). It holds
images.npy, every image decoded as uint8 (N, C, H, W) in the folder's order; a changed, added or
removed file, or other preprocessing, is another entry. Read back memory-mapped, so an entry
costs no copy until its pages are read. When the images would not fit in memory, each split gets
a file of its own rows (`Images.split`), and training slices batches from it through the page
cache. Files are written to a temporary name and renamed into place (dlx/durable.py): a reader
never sees half a file, and two processes that decode at once both leave a valid entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

FORMAT = 1  # bumped when what an entry holds changes


def base(cache_dir: str | None) -> Path:
    """dataset.cache_dir, else $XDG_CACHE_HOME/dlx, else ~/.cache/dlx."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dlx"


class Images:
    """The cache entry of an image folder's decoded images."""

    def __init__(self, cfg, samples: list[tuple[str, int]], preprocessing: dict):
        digest = hashlib.sha256(json.dumps({"format": FORMAT, "preprocessing": preprocessing},
                                           sort_keys=True).encode())
        for path, label in samples:
            stat = os.stat(path)
            digest.update(f"{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\0{label}\n"
                          .encode())
        self.folder = base(cfg.cache_dir) / "image_folder" / digest.hexdigest()[:24]

    def images(self, decode: Callable[[], torch.Tensor]) -> np.ndarray:
        """Every image, memory-mapped from the entry; decoded (and stored) first if it is new."""
        path = self.folder / "images.npy"
        if not path.is_file():
            _store(path, decode().numpy())
        return np.load(path, mmap_mode="c")  # copy-on-write: writable for torch, never written

    def split(self, name: str, rows: np.ndarray) -> torch.Tensor:
        """The images of one split (rows of `images`), memory-mapped from a file of their own."""
        key = hashlib.sha256(np.ascontiguousarray(rows, dtype=np.int64).tobytes()).hexdigest()[:16]
        path = self.folder / f"{name}-{key}.npy"
        if not path.is_file():
            images = self.images(_missing)
            out = np.empty((len(rows), *images.shape[1:]), dtype=images.dtype)
            for start in range(0, len(rows), 4096):  # in chunks: a few MB in memory at a time
                out[start:start + 4096] = images[rows[start:start + 4096]]
            _store(path, out)
        return torch.from_numpy(np.load(path, mmap_mode="c"))


def fits(images: np.ndarray, in_memory: str) -> bool:
    """Whether the images are read into memory (dataset.in_memory): true, false, or auto, when
    they take under half the memory free now."""
    if str(in_memory).lower() != "auto":
        return str(in_memory).lower() == "true"
    import psutil

    return images.nbytes < psutil.virtual_memory().available / 2


def _store(path: Path, array: np.ndarray) -> None:
    from dlx.durable import replace

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".npy")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
            f.flush()
            os.fsync(f.fileno())
        replace(Path(tmp), path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _missing() -> torch.Tensor:
    raise FileNotFoundError("the cache entry lost its images.npy while in use")
