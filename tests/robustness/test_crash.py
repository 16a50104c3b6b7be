"""Crash safety of checkpoints: a `dlx train` SIGKILLed while it writes a checkpoint always leaves
a loadable last.pt and a run the tracking writer ended KILLED, a leftover temp file is never read
(and is removed by the resumed run), and trainer.resume falls back to best.pt when last.pt is
damaged, or says in one line which files it could not read.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dlx.errors import DlxError
from dlx.training import checkpoint

FAST = ("trainer.progress=false", "tracking.log_model=false")
# ~2.4M parameters + Adam state: 28 MB per checkpoint, so a good share of each epoch is writing
BIG = ("model=mlp", "model.hidden_sizes=[1536,1536]", "dataset=synthetic_logistic",
       "dataset.n_samples=200", "trainer.device=cpu", "trainer.checkpoint_every=1")


def _start(dlx, cwd: Path, *overrides: str, **kw) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "dlx", "train", *overrides, *FAST], cwd=cwd,
                            env=dlx.env, text=True, **kw)


def _ckpt_dir(cwd: Path) -> Path | None:
    found = list(cwd.glob("outputs/runs/*/*/checkpoints"))
    return found[0] if found else None


def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _assert_loadable(folder: Path, context: str) -> dict:
    state = checkpoint.load(folder / checkpoint.LAST)  # raises on a truncated or garbage file
    assert state["epoch"] >= 1 and len(state["history"]) == state["epoch"], context
    assert all(torch.isfinite(t).all() for t in state["model"].values()), context
    return state


def _steps(dlx, run_id: str, key: str = "train_loss") -> list[int]:
    return sorted(m.step for m in dlx.client().get_metric_history(run_id, key))


@pytest.mark.spawn  # also run with a new interpreter per command (make test-spawn)
def test_sigkill_during_checkpoint_writes_leaves_a_loadable_last_pt_and_resume_goes_on(dlx):
    # 1. kill exactly while a checkpoint is being written: a temp file exists next to last.pt
    cwd = dlx.cwd / "mid_write"
    proc = _start(dlx, cwd, *BIG, "trainer.epochs=200", stdout=subprocess.DEVNULL,
                  stderr=subprocess.PIPE)
    caught, deadline = [], time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        folder = _ckpt_dir(cwd)
        if folder is not None and (folder / checkpoint.LAST).exists():
            caught = _temp_files(folder)
            if caught:
                break
        time.sleep(0.002)
    proc.kill()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err
    assert caught, "never saw a checkpoint being written (no .tmp file next to last.pt)"
    folder = _ckpt_dir(cwd)
    killed = _assert_loadable(folder, f"killed while writing {caught}")
    # a leftover temp file is never a resume candidate
    assert checkpoint.locate(str(folder.parent), lambda _: None) == folder / checkpoint.LAST

    # 2. the killed run resumes from its run dir: same run, every epoch logged once, temp gone
    store = type(dlx)(cwd)  # that run's working dir and MLflow store
    # SIGKILL cannot be caught, but the tracking writer (its own process, which may still be
    # writing what the trainer sent it, the run itself included) sees the trainer go and ends it
    deadline = time.time() + 60
    runs = store.runs() if (cwd / "mlflow.db").exists() else []
    while (not runs or runs[0].info.status == "RUNNING") and time.time() < deadline:
        time.sleep(0.2)
        runs = store.runs() if (cwd / "mlflow.db").exists() else []
    (run,) = runs
    assert run.info.status == "KILLED" and "ended without ending" in run.data.tags["dlx.ended_by"]
    target = killed["epoch"] + 2
    proc = subprocess.run([sys.executable, "-m", "dlx", "train", *BIG, f"trainer.epochs={target}",
                           f"trainer.resume={folder.parent}", *FAST], cwd=cwd, env=dlx.env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    (run,) = store.runs()
    assert run.info.status == "FINISHED"
    assert run.data.tags["dlx.resumed_from_epoch"] == str(killed["epoch"])
    assert _steps(store, run.info.run_id) == list(range(1, target + 1))
    assert _temp_files(folder) == []
    assert checkpoint.load(folder / checkpoint.LAST)["epoch"] == target


@pytest.mark.slow
def test_sigkill_at_random_moments_always_leaves_a_loadable_last_pt(dlx):
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    for i in range(4):
        delay = rng.uniform(0, 2.5)
        where = dlx.cwd / f"random_{i}"
        proc = _start(dlx, where, *BIG, "trainer.epochs=200", stdout=subprocess.PIPE,
                      stderr=subprocess.DEVNULL)
        for line in proc.stdout:
            if line.startswith("epoch 1:"):
                break
        time.sleep(delay)
        proc.kill()
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        folder = _ckpt_dir(where)
        _assert_loadable(folder, f"killed {delay:.3f}s after epoch 1 (seed {seed})")
        assert checkpoint.locate(str(folder.parent), lambda _: None) == folder / checkpoint.LAST


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if how == "truncate" else b"not a checkpoint\n" * 64)


@pytest.mark.slow  # over 30 s: `make test-slow` (CI runs it)
def test_resume_skips_a_damaged_last_pt_and_names_unreadable_files(dlx):
    base = ("model=mlp", "model.hidden_sizes=[16]", "trainer.device=cpu")
    dlx.train(*base, "trainer.epochs=3")
    (run,) = dlx.runs()
    folder = Path(run.data.tags["dlx.output_dir"]) / checkpoint.DIR
    best_epoch = checkpoint.load(folder / checkpoint.BEST)["epoch"]

    # last.pt truncated (a disk that lost its tail) plus a half-written temp file: best.pt is used
    _damage(folder / checkpoint.LAST, "truncate")
    (folder / f".{checkpoint.LAST}.tmp").write_bytes(b"\x00" * 100)
    proc = dlx.train(*base, "trainer.epochs=4", f"trainer.resume={folder.parent}")
    assert run.info.run_id in proc.stdout
    (run,) = dlx.runs()
    assert run.info.status == "FINISHED"
    assert run.data.tags["dlx.resumed_from_epoch"] == str(best_epoch)
    assert _steps(dlx, run.info.run_id) == [1, 2, 3, 4]  # redone epochs are not logged twice
    assert checkpoint.load(folder / checkpoint.LAST)["epoch"] == 4
    assert _temp_files(folder) == []

    # a damaged file named explicitly is not swapped for another: one line naming it
    _damage(folder / checkpoint.LAST, "garbage")
    spec = str(folder / checkpoint.LAST)
    assert checkpoint.locate(spec, lambda _: None) == folder / checkpoint.LAST
    with pytest.raises(DlxError) as e:
        checkpoint.load(folder / checkpoint.LAST)
    assert str(e.value).startswith(f"cannot read checkpoint {spec}: ") and "\n" not in str(e.value)
    assert checkpoint.locate(str(folder.parent), lambda _: None) == folder / checkpoint.BEST

    # neither file readable: one line naming both, the run is left as it was
    _damage(folder / checkpoint.BEST, "truncate")
    proc = dlx.train(*base, "trainer.epochs=5", f"trainer.resume={run.info.run_id}", check=False)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert "no readable checkpoint" in line and "Traceback" not in proc.stderr
    assert str(folder / "last.pt") in line and str(folder / "best.pt") in line
    (run,) = dlx.runs()
    assert run.info.status == "FINISHED" and _steps(dlx, run.info.run_id) == [1, 2, 3, 4]


def test_checkpoint_writes_are_fsynced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace",
                        lambda a, b: (events.append(f"replace {Path(b).name}"), real_replace(a, b))[1])
    state = {"epoch": 1, "model": {"w": torch.ones(3)}, "history": [{}]}
    saver = checkpoint.Checkpointer(tmp_path, every=1, meta=lambda final: {"run_id": None})
    saver(lambda: state, 1, best=True, final=False)  # last.pt, then best.pt as a copy of it
    # file data, rename, folder entry: for last.pt and for best.pt
    assert events == ["fsync", "replace last.pt", "fsync", "fsync", "replace best.pt", "fsync"]
    assert checkpoint.load(tmp_path / "best.pt")["epoch"] == 1
    assert _temp_files(tmp_path) == []
    # a new Checkpointer on a folder with a leftover temp file removes it
    (tmp_path / ".last.pt.tmp").write_bytes(b"half")
    checkpoint.Checkpointer(tmp_path, every=1, meta=lambda final: {})
    assert _temp_files(tmp_path) == []


@pytest.mark.slow
def test_sigterm_at_random_moments_always_ends_killed_with_a_loadable_checkpoint(dlx):
    """SIGTERM at 20 seeded random moments of a run that checkpoints and logs every few
    milliseconds (so the signal lands in checkpoint writes, messages to the tracking writer,
    log calls): exit 130, the run KILLED, last.pt loadable, every time."""
    rng = random.Random(20261201)
    fast = ("model=mlp", "model.hidden_sizes=[8]", "dataset=synthetic_logistic",
            "dataset.n_samples=200", "trainer.device=cpu", "trainer.epochs=100000")
    for i in range(20):
        delay = rng.uniform(0, 1.5)
        where = dlx.cwd / f"term_{i}"
        proc = _start(dlx, where, *fast, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for line in proc.stdout:
            if line.startswith("epoch 1:"):
                break
        time.sleep(delay)
        proc.terminate()
        _, err = proc.communicate(timeout=120)
        context = f"SIGTERM {delay:.3f}s after epoch 1 (moment {i})"
        assert proc.returncode == 130, f"{context}: exit {proc.returncode}\n{err}"
        (run,) = type(dlx)(where).runs()
        assert run.info.status == "KILLED", context
        _assert_loadable(_ckpt_dir(where), context)
