"""Checkpoints and trainer.resume, through the real `dlx train`.

A run SIGKILLed mid-training and resumed ends with exactly the metrics of an uninterrupted run
and one metric point per epoch in its (single) MLflow run; resume also takes a run dir or a
checkpoint file; a checkpoint of another model is one clear line; a non-finite loss keeps the
last good checkpoint; Ctrl-C writes one.
"""

import pytest

import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

# dropout (CPU RNG), Adam state, a step schedule and checkpoints every 2 epochs: all must resume
ARGS = ("model=mlp", "model.hidden_sizes=[32]", "trainer.epochs=12", "dataset.batch_size=32",
        "trainer.device=cpu", "regularizer=[dropout]", "regularizer.dropout.p=0.2",
        "scheduler=step", "scheduler.step_size=3", "scheduler.gamma=0.7",
        "trainer.checkpoint_every=2")
KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr")


def _history(client, run_id, key):
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _ckpt_dir(run) -> Path:
    return Path(run.data.tags["dlx.output_dir"]) / "checkpoints"


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(dlx):
    dlx.train(*ARGS)
    (full,) = dlx.runs()

    # the same run, SIGKILLed once epoch 5 is logged (epoch 4 is the last checkpoint): epoch 5
    # is redone on resume and must not be logged twice
    proc = subprocess.Popen([sys.executable, "-m", "dlx", "train", *ARGS, "trainer.progress=false",
                             "tracking.log_model=false"], cwd=dlx.cwd, env=dlx.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("epoch 5:"):
            break
    client = dlx.client()
    (killed,) = [r for r in dlx.runs() if r.info.run_id != full.info.run_id]
    deadline = time.time() + 30
    while 5 not in dict(_history(client, killed.info.run_id, "train_loss")) and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed = client.get_run(killed.info.run_id)
    assert killed.info.status == "RUNNING"  # SIGKILL cannot be caught: resume picks it up
    steps_before = [s for s, _ in _history(client, killed.info.run_id, "train_loss")]
    assert 5 in steps_before and max(steps_before) < 12, steps_before

    proc = dlx.train(*ARGS, f"trainer.resume={killed.info.run_id}")
    assert killed.info.run_id in proc.stdout
    runs = dlx.runs()
    assert len(runs) == 2  # resumed into the same run, not a new one
    resumed = client.get_run(killed.info.run_id)
    assert resumed.info.status == "FINISHED"
    assert int(resumed.data.tags["dlx.resumed_from_epoch"]) % 2 == 0
    for key in KEYS:
        got, want = _history(client, resumed.info.run_id, key), _history(client, full.info.run_id, key)
        assert [s for s, _ in got] == list(range(1, 13)), key  # no duplicates, no gaps
        assert got == want, key  # bit-identical on the CPU
    for key in ("test_loss", "test_accuracy", "test_f1_macro"):
        assert resumed.data.metrics[key] == full.data.metrics[key], key


@pytest.mark.slow
def test_resume_by_run_dir_or_file_and_a_foreign_checkpoint_is_one_line(dlx):
    base = ("model=mlp", "model.hidden_sizes=[32]", "trainer.device=cpu")
    dlx.train(*base, "trainer.epochs=2")
    (run,) = dlx.runs()
    ckpt = _ckpt_dir(run)
    assert sorted(p.name for p in ckpt.iterdir()) == ["best.pt", "last.pt"]  # no temp files left
    state = torch.load(ckpt / "last.pt", weights_only=True)
    assert state["epoch"] == 2 and len(state["history"]) == 2
    assert {"model", "optimizer", "schedule", "rng", "early_stopping", "meta"} <= set(state)
    assert state["meta"]["run_id"] == run.info.run_id

    # a run dir: more epochs, same run
    dlx.train(*base, "trainer.epochs=3", f"trainer.resume={ckpt.parent}")
    (run,) = dlx.runs()
    assert run.info.status == "FINISHED"
    assert [s for s, _ in _history(dlx.client(), run.info.run_id, "val_loss")] == [1, 2, 3]
    assert torch.load(ckpt / "last.pt", weights_only=True)["epoch"] == 3

    # a checkpoint file of another model: one line that says how to resume it
    proc = dlx.train("model=cnn", "trainer.epochs=4", f"trainer.resume={ckpt / 'last.pt'}",
                     check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "holds a different model" in lines[0], proc.stderr
    assert "model=mlp model.hidden_sizes=[32]" in lines[0]
    proc = dlx.train("trainer.resume=no-such-run", check=False)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert "neither a checkpoint file, a run dir nor an MLflow run id" in proc.stderr
    (run,) = dlx.runs()
    assert run.info.status == "FINISHED"


def test_non_finite_loss_names_epoch_and_batch_and_keeps_the_last_good_checkpoint(dlx):
    # lr=3 diverges on y = 2x + 1 over a few epochs, then overflows
    proc = dlx.train("model=linear", "dataset=synthetic_linear", "optimizer=sgd",
                     "optimizer.lr=3", "trainer.epochs=40", check=False)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert "loss became non-finite in epoch 5, batch" in line
    assert "learning rate is probably too high" in line
    (run,) = dlx.runs()
    assert run.info.status == "FAILED"
    last = torch.load(_ckpt_dir(run) / "last.pt", weights_only=True)
    assert last["epoch"] == 4
    assert all(torch.isfinite(t).all() for t in last["model"].values())
    assert torch.load(_ckpt_dir(run) / "best.pt", weights_only=True)["epoch"] == 1


def test_ctrl_c_writes_a_checkpoint_and_ends_killed(dlx):
    # checkpoint_every larger than the epochs run: only the interrupt writes one
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlx", "train", "model=mlp", "trainer.epochs=500",
         "trainer.checkpoint_every=1000", "trainer.progress=false", "tracking.log_model=false"],
        cwd=dlx.cwd, env=dlx.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("epoch 2:"):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    (run,) = dlx.runs()
    assert run.info.status == "KILLED"
    state = torch.load(_ckpt_dir(run) / "last.pt", weights_only=True)
    logged = [m.step for m in dlx.client().get_metric_history(run.info.run_id, "train_loss")]
    # the CLI prints an epoch before it is logged: the checkpoint holds every logged epoch
    assert state["epoch"] >= 2 and state["epoch"] >= max(logged)
    assert len(state["history"]) == state["epoch"]
