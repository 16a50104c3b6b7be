"""Checkpoints: <run dir>/checkpoints/last.pt and best.pt.

A checkpoint holds everything a resumed run needs to go on as if it had never stopped: model,
optimizer, scheduler and grad-scaler states, the RNG states (torch CPU, the fit loop's shuffle
generator, CUDA), the early-stopping state, the per-epoch history and the epoch counter, plus
`meta`: what it was trained as (model config, data spec, optimizer) and the MLflow run it belongs
to. Files are written to a temp file, fsynced and renamed (a crash, even of the machine, never
leaves half a checkpoint; a leftover temp file is never read and is removed by the next run that
writes there) and read with `torch.load(..., weights_only=True)` (no code is unpickled). Resuming
from a run dir takes last.pt, or best.pt when last.pt cannot be read (damaged by hand or disk).
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dlx import durable, interrupts
from dlx.errors import ConfigError, DlxError

LAST, BEST = "last.pt", "best.pt"
DIR = "checkpoints"  # under the Hydra run dir


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def save(state: dict, path: Path) -> None:
    """Write atomically: a temp file in the same folder, fsynced, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(_tmp(path), "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())  # the bytes are on disk before the name points at them
    durable.replace(_tmp(path), path)


def load(path: Path) -> dict:
    """Read a checkpoint onto the CPU (tensors move to the model's device when loaded into it)."""
    state, why = _read(path)
    if state is None:
        raise DlxError(f"cannot read checkpoint {path}: {why}: pass the run dir (it falls back to "
                       f"{BEST} when {LAST} is damaged) or start again without trainer.resume")
    return state


def _read(path: Path) -> tuple[dict | None, str]:
    """(state, "") or (None, why `path` is not a readable dlx checkpoint, in one short line)."""
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol warning: the error says it
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, garbage bytes, empty file, I/O error
        first = re.split(r"(?<=\.)\s", str(e).strip().split("\n")[0])[0]
        return None, f"truncated or damaged ({type(e).__name__}{': ' + first if first else ''})"
    if not isinstance(state, dict) or not {"epoch", "model", "meta"} <= set(state):
        return None, "not a checkpoint dlx wrote (no epoch, model, meta)"
    return state, ""


class Checkpointer:
    """Writes last.pt every `every` epochs and at the end, best.pt when the monitored metric
    improves. `state()` and `meta(final)` are called only when something is written; a Ctrl-C or
    SIGTERM that arrives meanwhile takes effect once the files are complete."""

    def __init__(self, directory: Path, every: int, meta: Callable[[bool], dict[str, Any]]):
        self.dir, self.every, self.meta = Path(directory), every, meta
        self.saved_epoch = 0  # the epoch last.pt holds
        for name in (LAST, BEST):  # a write a killed process left half done (never read)
            _tmp(self.dir / name).unlink(missing_ok=True)

    def __call__(self, state: Callable[[], dict], epoch: int, *, best: bool, final: bool) -> None:
        last = final or epoch % self.every == 0
        if not (last or best):
            return
        full = {**state(), "meta": self.meta(final)}
        with interrupts.deferred():
            self._write(full, epoch, best, last)

    def _write(self, full: dict, epoch: int, best: bool, last: bool) -> None:
        if last:
            save(full, self.dir / LAST)
            self.saved_epoch = epoch
        if best and last:  # the same bytes: copy rather than serialize twice
            tmp = _tmp(self.dir / BEST)
            with open(self.dir / LAST, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
                dst.flush()
                os.fsync(dst.fileno())
            durable.replace(tmp, self.dir / BEST)
        elif best:
            save(full, self.dir / BEST)


def locate(spec: str, run_dir_of: Callable[[str], str | None]) -> Path:
    """trainer.resume -> the checkpoint to resume from. `spec` is a checkpoint file, a run dir (or
    its checkpoints/ folder) or an MLflow run id; `run_dir_of(run_id)` gives a run's dlx.output_dir.
    A folder gives its last.pt, or its best.pt when last.pt cannot be read; a file is taken as is."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        folder = next((d for d in (path / DIR, path) if (d / LAST).is_file()), None)
        if folder is None:
            raise DlxError(f"trainer.resume={spec} is a folder without {DIR}/{LAST}: pass a run dir "
                           "whose run wrote checkpoints (trainer.checkpoint_every > 0)")
        return _newest_valid(spec, folder)
    run_dir = run_dir_of(spec)
    if run_dir is None:
        raise DlxError(f"trainer.resume={spec} is neither a checkpoint file, a run dir nor an MLflow "
                       "run id in this store: pass one of those (`dlx runs` lists run ids)")
    candidate = Path(run_dir) / DIR / LAST
    if not candidate.is_file():
        raise DlxError(f"trainer.resume={spec}: run {spec} has no checkpoint at {candidate}: "
                       "it was run with trainer.checkpoint_every=0 or its files were removed")
    return _newest_valid(spec, candidate.parent)


def _newest_valid(spec: str, folder: Path) -> Path:
    """last.pt if it loads, else best.pt (a whole state too, of the best epoch so far); one line
    naming both when neither does. Temp files (.last.pt.tmp) are never read: maybe half written."""
    problems = []
    for path in (folder / LAST, folder / BEST):
        state, why = _read(path) if path.is_file() else (None, "missing")
        if state is not None:
            return path
        problems.append(f"{path}: {why}")
    raise DlxError(f"trainer.resume={spec}: no readable checkpoint ({'; '.join(problems)}): "
                   "start the run again without trainer.resume")


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


def resume_state(spec: str | None, identity: dict, in_sweep: bool, ckpt_dir: Path,
                 run_dir_of: Callable[[str], str | None]) -> tuple[dict | None, Path]:
    """trainer.resume -> (the checkpoint's state, the folder the resumed run keeps writing to);
    (None, ckpt_dir) when not resuming. `run_dir_of(run_id)` finds a run id's output dir."""
    if not spec:
        return None, ckpt_dir
    if in_sweep:
        raise ConfigError(f"trainer.resume={spec} continues one run: drop -m")
    path = locate(str(spec), run_dir_of)
    state = load(path)
    check_compatible(str(spec), state["meta"], identity)
    return state, path.parent
