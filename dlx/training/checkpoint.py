"""Checkpoints: <run dir>/checkpoints/last.pt and best.pt.

A checkpoint holds everything a resumed run needs to go on as if it had never stopped: model,
optimizer, scheduler and grad-scaler states, the RNG states (torch CPU, the fit loop's shuffle
generator, CUDA), the early-stopping state, the per-epoch history and the epoch counter, plus
`meta`: what it was trained as (model config, data spec, optimizer) and the MLflow run it belongs
to. Files are written to a temp file and renamed (a crash never leaves half a checkpoint) and
read with `torch.load(..., weights_only=True)` (no code is unpickled).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dlx.errors import DlxError

LAST, BEST = "last.pt", "best.pt"
DIR = "checkpoints"  # under the Hydra run dir


def save(state: dict, path: Path) -> None:
    """Write atomically: a temp file in the same folder, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load(path: Path) -> dict:
    """Read a checkpoint onto the CPU (tensors move to the model's device when loaded into it)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise DlxError(f"cannot read checkpoint {path}: {e}".replace("\n", " ")) from e


class Checkpointer:
    """Writes last.pt every `every` epochs and at the end, best.pt when the monitored metric
    improves. `state()` is called only when something is written."""

    def __init__(self, directory: Path, every: int, meta: dict[str, Any]):
        self.dir, self.every, self.meta = Path(directory), every, meta
        self.saved_epoch = 0  # the epoch last.pt holds

    def __call__(self, state: Callable[[], dict], epoch: int, *, best: bool, final: bool) -> None:
        last = final or epoch % self.every == 0
        if not (last or best):
            return
        full = {**state(), "meta": self.meta}
        if last:
            save(full, self.dir / LAST)
            self.saved_epoch = epoch
        if best and last:  # the same bytes: copy rather than serialize twice
            tmp = self.dir / f".{BEST}.tmp"
            shutil.copyfile(self.dir / LAST, tmp)
            os.replace(tmp, self.dir / BEST)
        elif best:
            save(full, self.dir / BEST)


def locate(spec: str, run_dir_of: Callable[[str], str | None]) -> Path:
    """trainer.resume -> the last.pt to resume from. `spec` is a checkpoint file, a run dir (or
    its checkpoints/ folder) or an MLflow run id; `run_dir_of(run_id)` gives a run's dlx.output_dir."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        for candidate in (path / DIR / LAST, path / LAST):
            if candidate.is_file():
                return candidate
        raise DlxError(f"trainer.resume={spec} is a folder without {DIR}/{LAST}: pass a run dir "
                       "whose run wrote checkpoints (trainer.checkpoint_every > 0)")
    run_dir = run_dir_of(spec)
    if run_dir is None:
        raise DlxError(f"trainer.resume={spec} is neither a checkpoint file, a run dir nor an MLflow "
                       "run id in this store: pass one of those (`dlx runs` lists run ids)")
    candidate = Path(run_dir) / DIR / LAST
    if not candidate.is_file():
        raise DlxError(f"trainer.resume={spec}: run {spec} has no checkpoint at {candidate}: "
                       "it was run with trainer.checkpoint_every=0 or its files were removed")
    return candidate


def check_compatible(spec: str, meta: dict, current: dict) -> None:
    """A checkpoint continues only the model (and optimizer) it was trained as; else one line."""
    for key, what in (("model", "model"), ("spec", "data shape"), ("optimizer", "optimizer")):
        if meta.get(key) != current.get(key):
            raise DlxError(
                f"trainer.resume={spec} holds a different {what} ({_short(meta.get(key))}) than "
                f"this run builds ({_short(current.get(key))}): repeat the original run's overrides "
                f"with trainer.resume: {meta.get('overrides') or '(defaults)'}"
            )


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    return str(value)
