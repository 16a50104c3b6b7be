"""Shared by the benchmarks: MNIST-shaped data on disk, in-process `dlx.run.train` through Hydra's
compose API (what `dlx train` runs), the machine's description and RESULTS.md sections.

Needs only the installed project: no tests/ imports, no pytest, no network.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import statistics
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
BIN = Path(sys.executable).parent  # the venv's bin: its `dlx` is the one benchmarked


# ------------------------------------------------------------------------------ data
def _write_idx(path: Path, array: np.ndarray) -> None:
    """uint8 array -> uncompressed IDX file (MNIST's format): magic 0x08<ndim>, then the dims."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">i", (0x08 << 8) | array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    path.write_bytes(header + array.tobytes())


def mnist_like(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n learnable 28x28 uint8 images, 10 classes: noise plus a bright 7x7 blob whose position
    (jittered by a pixel) encodes the class."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n).astype(np.uint8)
    x = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
    row, col = np.divmod(y.astype(int), 4)  # a 3x4 grid of blob positions, 10 used
    top = np.clip(2 + row * 8 + rng.integers(-1, 2, n), 0, 21)
    left = np.clip(1 + col * 7 + rng.integers(-1, 2, n), 0, 21)
    r = top[:, None, None] + np.arange(7)[None, :, None]  # (n, 7, 1) rows of each blob
    c = left[:, None, None] + np.arange(7)[None, None, :]  # (n, 1, 7) columns
    x[np.arange(n)[:, None, None], r, c] += rng.integers(150, 196, (n, 7, 7), dtype=np.uint8)
    return x, y


def write_mnist(root: Path, n_train: int = 60_000, n_test: int = 10_000, seed: int = 0) -> Path:
    """MNIST's raw IDX files under <root>/MNIST/raw, as torchvision reads them; returns root."""
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, s in (("train", n_train, seed), ("t10k", n_test, seed + 1)):
        x, y = mnist_like(n, s)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", x)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
    return Path(root)


def write_cifar10(root: Path, n_train: int = 50_000, n_test: int = 10_000, seed: int = 0) -> Path:
    """CIFAR-10's python batches under <root>/cifar-10-batches-py (data_batch_1..5, test_batch,
    batches.meta), as torchvision reads them: learnable 32x32 RGB images (noise plus a coloured
    8x8 square whose position and tint encode the class). They are not the published files, so
    dlx reads them with dataset.verify=false. Returns root."""
    import pickle

    base = Path(root) / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def images(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 90, (n, 3, 32, 32), dtype=np.uint8)
        row, col = np.divmod(y, 4)
        for i in range(n):
            t, left = 2 + row[i] * 10, 1 + col[i] * 8
            x[i, y[i] % 3, t:t + 8, left:left + 8] += 150
        return x.reshape(n, 3072), y

    def dump(name: str, n: int) -> None:
        x, y = images(n)
        with open(base / name, "wb") as f:
            pickle.dump({"batch_label": name, "labels": [int(v) for v in y], "data": x,
                         "filenames": [f"{name}_{i}.png" for i in range(n)]}, f)

    for i in range(1, 6):
        dump(f"data_batch_{i}", n_train // 5)
    dump("test_batch", n_test)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{c}" for c in range(10)],
                     "num_cases_per_batch": n_train // 5, "num_vis": 3072}, f)
    return Path(root)


# ------------------------------------------------------------------------------ dlx in-process
def compose(overrides: list[str], output_dir: Path):
    """(cfg, runtime) of `dlx train OVERRIDES`, for `dlx.run.train(cfg, runtime)` in this process
    (as lightning-hydra-template's tests call their train): dlx's own builder."""
    from dlx.config import compose as dlx_compose

    return dlx_compose(overrides, output_dir)


# ------------------------------------------------------------------------------ whole processes
def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None):
    """Run argv in cwd as a user's shell would (without MLFLOW_TRACKING_URI / HYDRA_FULL_ERROR);
    (wall seconds, CPU seconds of the child and what it waited for, its stdout). A failure stops
    the benchmark with the command's output."""
    import resource
    import time

    env = {**{k: v for k, v in os.environ.items()
              if k not in ("MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR")}, **(env or {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"`{' '.join(argv)}` (in {cwd}) exited {proc.returncode}; stopping.\n--- stdout\n"
                 f"{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


# ------------------------------------------------------------------------------ reporting
def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=False).stdout.strip()
        return out + ("+uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine(device: str = "cpu") -> str:
    """One line: platform, CPU, cores, torch (and the GPU when the device is CUDA)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:  # the model name, on Linux
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [platform.platform(), f"{cpu}, {os.cpu_count()} cores",
             f"Python {platform.python_version()}", f"torch {torch.__version__}",
             f"{torch.get_num_threads()} torch threads"]
    if device.startswith("cuda") and torch.cuda.is_available():
        parts.append(f"GPU {torch.cuda.get_device_name(torch.device(device))}")
    return "; ".join(parts)


def header(device: str = "cpu") -> str:
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return f"Machine: {machine(device)}  \nDate: {date}; commit {commit()}"


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(head: list[str], rows: list[list]) -> str:
    """A Markdown table (also readable as printed text)."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


_PREAMBLE = """# Benchmark results

Written by `make bench` (the scripts in benchmarks/); each script replaces its own section.
Targets are reported, not asserted. Numbers from a shared or busy machine are noisy: rerun on a
quiet one before drawing conclusions.
"""


def record(title: str, body: str) -> None:
    """Replace (or append) the section `## title` of benchmarks/RESULTS.md."""
    text = RESULTS.read_text() if RESULTS.exists() else _PREAMBLE
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    RESULTS.write_text(text)
