"""conf/trainer: every trainer.* option does what it says.

- precision, grad_clip, deterministic, compile, and the `auto` fast paths (channels_last,
  capture): fp16 and captured CUDA graphs need a GPU; here the CPU paths run (bf16 autocast works
  on a CPU; fp16 and capture=true there are clear errors) and compile runs on the CPU in the slow
  suite;
- checkpoint_every and resume: a run SIGKILLed mid-training and resumed ends with exactly the
  metrics of an uninterrupted run and one metric point per epoch in its (single) MLflow run;
  resume also takes a run dir or a checkpoint file; a checkpoint of another model is one clear
  line; a non-finite loss keeps the last good checkpoint; Ctrl-C writes one;
- cv_folds / cv_refit: K-fold cross-validation on train+val, per-fold and mean/std metrics on the
  run, disjoint folds that cover the data, preprocessing refitted per fold;
- strategy=ddp: two CPU processes under torchrun (gloo) train one run like one process.

Where a test checks what training does, it runs `dlx.run.train` in this process (dlx.train_here);
errors, signals and torchrun go through the real `dlx` command.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures.datasets import make_csv
from fixtures.runs import artifact_json
from omegaconf import OmegaConf

from dlx.config.dataset import CSVConfig
from dlx.data import Bundle, Spec
from dlx.data import registry as loader
from dlx.errors import DataError
from dlx.training import cv


# ================================================================ precision, clipping, compile
def test_bf16_deterministic_clipped_training_still_learns(dlx):
    dlx.train_here("model=mlp", "model.hidden_sizes=[64]", "trainer.epochs=6",
                   "trainer.device=cpu", "trainer.precision=bf16",
                   "trainer.deterministic=true", "trainer.grad_clip=1.0",
                   "trainer.checkpoint_every=0")
    (run,) = dlx.runs()
    assert run.info.status == "FINISHED"
    assert run.data.params["trainer.precision"] == "bf16"
    assert run.data.tags["dlx.precision"] == "bf16"
    assert run.data.metrics["test_accuracy"] > 0.85, run.data.metrics


def test_fp16_without_cuda_is_one_line_before_any_run(dlx):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = dlx.train("model=mlp", "trainer.epochs=1", "trainer.precision=fp16", check=False)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert "trainer.precision=fp16 needs a CUDA device" in line and "bf16" in line
    assert dlx.runs() == []


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


@pytest.mark.slow
def test_compiled_training_matches_eager_accuracy(dlx):
    """trainer.compile=true and =false, same seed: the same run up to Inductor's floating-point
    differences (its fused kernels sum in another order)."""
    args = ("model=mlp", "trainer.epochs=3", "trainer.device=cpu")
    dlx.train(*args, "trainer.compile=true", "tracking.experiment=compiled")
    dlx.train(*args, "trainer.compile=false", "tracking.experiment=eager")
    (compiled,), (eager,) = dlx.runs("compiled"), dlx.runs("eager")
    assert compiled.info.status == eager.info.status == "FINISHED"
    assert (compiled.data.params["trainer.compile"], eager.data.params["trainer.compile"]) == (
        "True", "False")
    client = dlx.client()
    for key in ("train_loss", "val_loss", "val_accuracy"):
        got, want = (_history(client, r.info.run_id, key) for r in (compiled, eager))
        assert [s for s, _ in got] == [s for s, _ in want] == [1, 2, 3], key
        assert np.allclose([v for _, v in got], [v for _, v in want], rtol=1e-3, atol=1e-3), (
            key, got, want)
    for key in ("test_loss", "test_accuracy"):
        assert compiled.data.metrics[key] == pytest.approx(eager.data.metrics[key], abs=5e-3), key
    assert compiled.data.metrics["test_accuracy"] > 0.85


# ---------------------------------------------------------------- the pieces, in-process (fast)
def _data(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [3.0]]) * 100  # large targets: large gradients
    return Bundle(Spec("regression", (3,), 1), (x, y), None, (x, y))


def test_grad_clip_bounds_every_step():
    from dlx.training.fit import fit

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    fit(model, opt, _data(), epochs=1, batch_size=16, seed=0, grad_clip=0.5)
    moved = (torch.cat([p.detach().flatten() for p in model.parameters()]) - before).norm()
    assert moved <= 4 * 0.1 * 0.5 + 1e-6  # 4 steps of at most lr * max_norm
    assert moved > 0.1  # it did train


def test_fit_keeps_its_plain_signature_and_returns_a_history():
    from dlx.training.fit import fit

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    history = fit(model, torch.optim.SGD(model.parameters(), lr=1e-4), _data(), 3, 16, 0)
    assert len(history) == 3 and history.final_epoch == 3 and history.best_epoch is None
    assert history[0]["train_loss"] > history[-1]["train_loss"] and history[0]["lr"] == 1e-4


def test_a_last_batch_of_one_row_joins_the_batch_before_it():
    """Batch norm cannot train on 1 row: 35 rows at batch 17 are batches of 17 and 18."""
    from dlx.training.fit import Callback, fit

    class Steps(Callback):
        def __init__(self):
            self.steps = []

        def on_epoch_start(self, epoch, epochs, steps):
            self.steps.append(steps)

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))
    steps = Steps()
    history = fit(model, torch.optim.SGD(model.parameters(), lr=1e-3), _data(35), 2, 17, 0, [steps])
    assert steps.steps == [2, 2] and len(history) == 2
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in history)


# ---------------------------------------------------------------- fast paths: what `auto` picks
def _trainer(**kw):
    return OmegaConf.create({"precision": "auto", "channels_last": "auto", "capture": "auto",
                             "deterministic": False, **kw})


def test_auto_fast_paths_pick_bf16_and_capture_on_cuda_and_channels_last_for_conv_nets(monkeypatch):
    from dlx.training.device import CAPTURE_MIN_STEPS, fast_paths

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten())
    dense = torch.nn.Linear(4, 2)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    long = CAPTURE_MIN_STEPS
    keys = ("precision", "channels_last", "capture")
    picked = lambda *a: {k: fast_paths(*a)[k] for k in keys}  # noqa: E731
    assert picked(_trainer(), cuda, conv, long) == {
        "precision": "bf16", "channels_last": True, "capture": True}
    assert picked(_trainer(), cuda, dense, long - 1) == {
        "precision": "bf16", "channels_last": False, "capture": False}
    assert fast_paths(_trainer(deterministic=True), cuda, conv, long)["capture"] is False
    assert fast_paths(_trainer(), cuda, conv, long)["threads"] is None  # CUDA: left as set
    assert picked(_trainer(), cpu, conv, long) == {
        "precision": "fp32", "channels_last": True, "capture": False}
    assert fast_paths(_trainer(), cpu, dense, long)["channels_last"] is False
    # explicit choices win over auto
    assert picked(_trainer(precision="fp32", channels_last="false", capture="false"),
                  cuda, conv, long) == {"precision": "fp32", "channels_last": False, "capture": False}
    assert fast_paths(_trainer(channels_last="true"), cpu, conv, 1)["channels_last"] is True


def _keras_cnn():
    return torch.nn.Sequential(torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(32 * 14 * 14, 128), torch.nn.ReLU(),
                               torch.nn.Linear(128, 10))


def test_forward_flops_counts_linear_and_conv_work_and_changes_nothing():
    from dlx.training.device import forward_flops

    net = torch.nn.Sequential(_keras_cnn(), torch.nn.BatchNorm1d(10))
    stats = net[1].running_mean.clone()
    batch = torch.rand(32, 1, 28, 28)
    rng = torch.get_rng_state()
    per_row = 2 * (28 * 28 * 32 * 9 + 32 * 14 * 14 * 128 + 128 * 10)
    assert forward_flops(net, batch) == 32 * per_row
    assert torch.equal(torch.get_rng_state(), rng) and torch.equal(net[1].running_mean, stats)
    assert net.training  # put back in training mode


def test_auto_precision_and_threads_on_a_cpu_follow_the_work_per_batch(monkeypatch):
    """bf16 autocast on a CPU with native bf16 only for networks with enough work per batch and
    no recurrent or attention layers; one thread for small networks; why is said."""
    from dlx.training import device
    from dlx.training.device import fast_paths

    cpu = torch.device("cpu")
    monkeypatch.setattr(device, "native_bf16", lambda: True)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    big = fast_paths(_trainer(), cpu, _keras_cnn(), 10, torch.rand(32, 1, 28, 28))
    assert big["precision"] == "bf16" and big["threads"] == 2
    assert "66 MFLOP per batch" in big["precision_why"]
    small = fast_paths(_trainer(), cpu, torch.nn.Linear(2, 1), 10, torch.rand(32, 2))
    assert small["precision"] == "fp32" and small["threads"] == 1
    assert "under the 50 from which bf16 pays" in small["precision_why"]
    lstm = torch.nn.Sequential(torch.nn.Embedding(50, 8), torch.nn.LSTM(8, 8, batch_first=True))
    recurrent = fast_paths(_trainer(), cpu, lstm, 10, torch.randint(0, 50, (32, 10)))
    assert recurrent["precision"] == "fp32" and "LSTM layers are no faster" in recurrent["precision_why"]
    forced = fast_paths(_trainer(precision="fp32"), cpu, _keras_cnn(), 10, torch.rand(32, 1, 28, 28))
    assert forced["precision"] == "fp32" and forced["precision_why"] == "trainer.precision=fp32"
    monkeypatch.setattr(device, "native_bf16", lambda: False)
    plain = fast_paths(_trainer(), cpu, _keras_cnn(), 10, torch.rand(32, 1, 28, 28))
    assert plain["precision"] == "fp32" and "no native bf16" in plain["precision_why"]


def test_fit_trains_on_the_threads_it_is_given_and_puts_them_back():
    from dlx.training.fit import Callback, fit

    seen = []

    class Threads(Callback):
        def on_epoch_start(self, epoch, epochs, steps):
            seen.append(torch.get_num_threads())

    from fixtures.runs import torch_threads

    with torch_threads(3):  # not the 1 asked for, whatever the machine runs by default
        model = torch.nn.Linear(3, 1)
        fit(model, torch.optim.SGD(model.parameters(), lr=0.1), _data(40), 2, 8, 0, [Threads()],
            threads=1)
        assert seen == [1, 1] and torch.get_num_threads() == 3


def test_channels_last_on_cpu_trains_and_the_choices_are_tagged(dlx):
    # capture is left at auto: on a CPU it picks false, and says so in the tag
    dlx.train_here("model=cnn", "trainer.epochs=3", "trainer.device=cpu",
                   "trainer.channels_last=true", "trainer.checkpoint_every=0")
    (run,) = dlx.runs()
    tags = run.data.tags
    assert run.data.params["trainer.capture"] == "auto"
    assert (tags["dlx.precision"], tags["dlx.channels_last"], tags["dlx.capture"]) == (
        "fp32", "true", "false")
    assert run.data.metrics["test_accuracy"] > 0.8, run.data.metrics


@pytest.mark.parametrize("override, message", [
    ("trainer.capture=true", "trainer.capture=true records CUDA graphs"),
    ("trainer.channels_last=maybe", "trainer.channels_last=maybe is not one of auto, true, false"),
])
def test_fast_path_mistakes_are_one_line(dlx, override, message):
    proc = dlx.train("model=mlp", "trainer.epochs=1", "trainer.device=cpu", override, check=False)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert message in line
    assert all(r.info.status != "RUNNING" for r in dlx.runs())


@pytest.mark.slow
def test_the_captured_step_code_path_trains(monkeypatch):
    """capture=True compiles the step with mode="reduce-overhead" and marks each step's start.
    What a CPU can show: that code path runs (the step compiled once with that mode, one mark per
    optimizer step), Inductor was asked for CUDA graphs and skipped them (a CPU graph has none),
    and the captured step trains exactly as the eager one. Recording graphs needs CUDA."""
    from dlx.training import optim
    from dlx.training.fit import fit

    optim.undefer_dynamo()  # the real torch._dynamo (and its counters), as compiling loads it
    from torch._dynamo.utils import counters

    compiled, marks = [], []
    real_compile, real_mark = torch.compile, torch.compiler.cudagraph_mark_step_begin
    monkeypatch.setattr(torch, "compile",
                        lambda model, **kw: (compiled.append(kw), real_compile(model, **kw))[1])
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin",
                        lambda: (marks.append(1), real_mark())[1])
    torch._dynamo.reset()
    counters.clear()

    def run(capture: bool):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
        return fit(model, torch.optim.Adam(model.parameters(), lr=1e-2), _data(256), 3, 32, 0,
                   capture=capture)

    history = run(capture=True)
    assert compiled == [{"mode": "reduce-overhead"}]
    assert len(marks) == 3 * 8  # 3 epochs of 256 rows in batches of 32
    assert counters["stats"]["unique_graphs"] >= 1  # the step ran as a compiled graph
    assert counters["inductor"]["cudagraph_skips"] >= 1  # graphs asked for, skipped on a CPU
    assert len(history) == 3 and history[-1]["train_loss"] < history[0]["train_loss"]
    eager = run(capture=False)
    assert len(compiled) == 1 and len(marks) == 3 * 8  # neither without capture
    for a, b in zip(history, eager):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)


# ================================================================ checkpoints and trainer.resume
# dropout (CPU RNG), Adam state, a step schedule and checkpoints every 2 epochs: all must resume
ARGS = ("model=mlp", "model.hidden_sizes=[32]", "trainer.epochs=12", "dataset.batch_size=32",
        "trainer.device=cpu", "regularizer=[dropout]", "regularizer.dropout.p=0.2",
        "scheduler=step", "scheduler.step_size=3", "scheduler.gamma=0.7",
        "trainer.checkpoint_every=2")
KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr")


def _ckpt_dir(run) -> Path:
    return Path(run.data.tags["dlx.output_dir"]) / "checkpoints"


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(dlx):
    dlx.train(*ARGS)
    (full,) = dlx.runs()

    # the same run, SIGKILLed once epoch 5 is logged (epoch 4 or 6 is the last checkpoint): the
    # epochs after it are redone on resume and must not be logged twice
    proc = subprocess.Popen([sys.executable, "-m", "dlx", "train", *ARGS, "trainer.progress=false",
                             "tracking.log_model=false"], cwd=dlx.cwd, env=dlx.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the progress line is printed before the epoch's metrics go to the tracking writer (a process
    # of its own, which logs behind training): once epoch 6 is printed, epoch 5 is in the writer's
    # pipe. The trainer stops there for good, and is killed once the writer has logged epoch 5.
    for line in proc.stdout:
        if line.startswith("epoch 6:"):
            proc.send_signal(signal.SIGSTOP)
            break
    client = dlx.client()
    killed, deadline = None, time.time() + 60
    while killed is None and time.time() < deadline:
        others = [r for r in dlx.runs() if r.info.run_id != full.info.run_id]
        if others and 5 in dict(_history(client, others[0].info.run_id, "train_loss")):
            killed = others[0]
        else:
            time.sleep(0.2)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert killed is not None, "epoch 5 of the run to kill was never logged"
    # SIGKILL cannot be caught, but the tracking writer sees the trainer go and ends the run
    # KILLED (as tests/robustness/test_crash.py shows); resume picks it up
    deadline = time.time() + 30
    while client.get_run(killed.info.run_id).info.status == "RUNNING" and time.time() < deadline:
        time.sleep(0.2)
    killed = client.get_run(killed.info.run_id)
    assert killed.info.status == "KILLED"
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


# ================================================================ trainer.cv_folds
def test_five_folds_log_fold_metrics_mean_std_then_refit_and_test(dlx):
    dlx.train_here("model=mlp", "trainer.cv_folds=5", "trainer.epochs=3", "trainer.device=cpu",
                   "trainer.monitor=val_accuracy", "trainer.monitor_mode=max")
    (run,) = dlx.runs()
    assert run.info.status == "FINISHED"
    client = dlx.client()
    for name in ("val_accuracy", "val_loss"):
        folds = client.get_metric_history(run.info.run_id, f"fold_{name}")
        assert [m.step for m in sorted(folds, key=lambda m: m.step)] == [1, 2, 3, 4, 5]
        values = [m.value for m in folds]
        assert run.data.metrics[f"cv_mean_{name}"] == pytest.approx(np.mean(values))
        assert run.data.metrics[f"cv_std_{name}"] == pytest.approx(np.std(values))
    assert run.data.metrics["cv_mean_val_accuracy"] > 0.8  # digits, 3 epochs of an MLP
    assert len({m.value for m in client.get_metric_history(run.info.run_id, "fold_val_loss")}) == 5

    # the folds are disjoint and cover train+val, which the refit then trains on whole
    summary = artifact_json(run, "cv_folds.json")
    rows = [r for fold in summary["val_rows"] for r in fold]
    info = artifact_json(run, "data.json")  # the refit's: all of train+val is its train split
    assert info["n_val"] == 0 and sorted(rows) == list(range(info["n_train"]))
    assert max(map(len, summary["val_rows"])) - min(map(len, summary["val_rows"])) <= 1
    assert info["n_train"] + info["n_test"] == 1797  # the test split is never part of a fold
    assert run.data.metrics["test_accuracy"] > 0.8  # the refit model, scored once on test


def test_csv_preprocessing_is_refitted_per_fold_and_for_the_refit(dlx, tmp_path):
    path = make_csv(tmp_path / "t.csv", n=200)
    dlx.train_here("dataset=csv", f"dataset.path={path}", "model=mlp", "trainer.epochs=10",
                   "trainer.cv_folds=3")
    (run,) = dlx.runs()
    assert run.info.status == "FINISHED" and "test_accuracy" in run.data.metrics
    # the logged preprocessing is the refit's, fitted on all of train+val, never on test
    splits, pre = artifact_json(run, "splits.json"), artifact_json(run, "preprocessing.json")
    assert splits["val"] == [] and len(splits["train"]) == 160
    df = pd.read_csv(path)
    assert pre["fitted"]["scale"]["mean"]["f0"] == pytest.approx(df.iloc[splits["train"]]["f0"].mean())


def test_cv_without_refit_reports_scores_only(dlx):
    proc = dlx.train("model=logistic", "trainer.cv_folds=3", "trainer.cv_refit=none",
                     "trainer.epochs=2")
    (run,) = dlx.runs()
    assert run.info.status == "FINISHED"
    assert {"cv_mean_val_loss", "cv_std_val_loss", "fold_val_accuracy"} <= set(run.data.metrics)
    assert not any(k.startswith("test_") for k in run.data.metrics)
    assert run.info.run_id in proc.stdout


def test_cv_folds_1_is_an_error_that_names_the_fix(dlx):
    proc = dlx.train("trainer.cv_folds=1", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("dlx: error: invalid config: trainer.cv_folds=1 is not "
                                   "cross-validation: use 0 (off) or K >= 2 folds")
    assert dlx.runs() == []


@pytest.mark.parametrize("override, named", [
    ("trainer.cv_refit=false", "trainer.cv_refit=False is not one of best, all, none"),
    ("trainer.cv_workers=0", "trainer.cv_workers=0 is not auto or a number of worker processes"),
])
def test_cv_options_out_of_range_are_one_line_naming_the_values(dlx, override, named):
    proc = dlx.train("trainer.cv_folds=3", override, check=False)
    assert proc.returncode == 1 and named in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and dlx.runs() == []


def test_a_sweep_refits_its_winner_without_a_store(dlx):
    """trainer.cv_refit=best with tracking off: the sweep's session knows each point's score and
    config, so its winner is refit and tested all the same (nothing is recorded)."""
    proc = dlx.train("-m", "model=logistic", "dataset=synthetic_logistic", "trainer.epochs=1,2",
                     "trainer.cv_folds=3", "trainer.cv_workers=1", "tracking.enabled=false")
    out = proc.stdout.splitlines()
    (refit,) = [i for i, line in enumerate(out) if line.startswith("sweep: refitting the winner")]
    assert "on all of train+val (trainer.cv_refit=best)" in out[refit]
    (tested,) = [i for i, line in enumerate(out) if line.startswith("test_loss=")]
    assert tested > refit and "test_accuracy=" in out[tested]  # only the winner is tested
    assert out[tested + 1].startswith("not tracked (tracking.enabled=false)")
    assert proc.stderr == "" and dlx.runs() == []


# ------------------------------------------------------------------------- the fold splitter
def _bundle(y: np.ndarray, task: str = "multiclass", n_val: int = 10) -> Bundle:
    spec = Spec(task, (1,), 3 if task == "multiclass" else 1)
    x = torch.arange(len(y), dtype=torch.float32)[:, None]
    yt = torch.as_tensor(y) if task == "multiclass" else torch.as_tensor(y, dtype=torch.float32)[:, None]
    return Bundle(spec, (x[n_val:], yt[n_val:]), (x[:n_val], yt[:n_val]), (x[:1], yt[:1]))


def test_folds_are_stratified_disjoint_and_cover_train_plus_val():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    data = _bundle(y)
    splits = cv.folds(data, 5, seed=42)
    assert len(splits) == 5
    pooled = torch.cat([data.train[1], data.val[1]]).numpy()
    seen = np.concatenate([v for _, v in splits])
    assert sorted(seen) == list(range(100))  # each row is held out exactly once
    for train_rows, val_rows in splits:
        assert not set(train_rows) & set(val_rows)
        assert np.bincount(pooled[val_rows]).tolist() == [10, 6, 4]  # the class shares, exactly
    # the same seed gives the same folds; another seed, others
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, cv.folds(data, 5, 42)))
    assert not np.array_equal(splits[0][1], cv.folds(data, 5, 7)[0][1])


def test_take_slices_train_plus_val_and_keeps_test():
    data = _bundle(np.repeat([0, 1, 2], 10), n_val=6)
    fold = cv.take(data, np.array([0, 7, 29]), np.array([3, 6]))
    # positions in train+val: train rows first (x = 6..29), then val rows (x = 0..5)
    assert fold.train[0][:, 0].tolist() == [6.0, 13.0, 5.0]
    assert fold.val[0][:, 0].tolist() == [9.0, 12.0]
    assert fold.test[0] is data.test[0] and fold.info["n_train"] == 3
    assert cv.take(data, np.arange(30), None).val is None


def test_regression_uses_plain_kfold_and_small_classes_are_a_data_error():
    splits = cv.folds(_bundle(np.linspace(0, 1, 20), task="regression"), 4, seed=0)
    assert sorted(np.concatenate([v for _, v in splits])) == list(range(20))
    with pytest.raises(DataError, match="a class has only 3 rows .* lower trainer.cv_folds"):
        cv.folds(_bundle(np.repeat([0, 1, 2], [20, 20, 3])), 5, seed=0)


def test_csv_resplit_fits_the_scaler_on_the_fold_train_rows_only(tmp_path):
    path = make_csv(tmp_path / "t.csv", n=120)
    data = loader.load(OmegaConf.structured(CSVConfig(path=str(path))))
    splits = cv.folds(data, 3, seed=42)
    df = pd.read_csv(path)
    rest = data.artifacts["splits.json"]["train"] + data.artifacts["splits.json"]["val"]
    for train_rows, val_rows in splits:
        fold = cv.take(data, train_rows, val_rows)
        mean = fold.artifacts["preprocessing.json"]["fitted"]["scale"]["mean"]["f1"]
        assert mean == pytest.approx(df.iloc[[rest[i] for i in train_rows]]["f1"].mean())
        assert fold.artifacts["splits.json"]["val"] == sorted(rest[i] for i in val_rows)


# ================================================================ trainer.strategy=ddp
# Each global batch of dataset.batch_size rows is split between the ranks and DDP averages their
# gradients, so 2 ranks follow the 1-process run up to floating-point summation order and the
# last, unevenly split batch of each epoch. Stated tolerance: every epoch's val_loss within 0.01
# and test accuracy within 0.01 of the 1-process run's.
RUN = ["model=mlp", "dataset.batch_size=64", "trainer.epochs=3", "trainer.seed=3",
       "trainer.progress=false", "tracking.log_model=false"]


def torchrun(dlx, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--standalone", "-m", "dlx", "train", *args]
    return subprocess.run(cmd, check=False, cwd=dlx.cwd, env=dlx.env, capture_output=True,
                          text=True, timeout=300)


def _values(client, run_id: str, key: str) -> list[float]:
    return [v for _, v in _history(client, run_id, key)]


def test_two_gloo_ranks_log_one_run_on_disjoint_shards_matching_one_process(dlx):
    ddp = torchrun(dlx, *RUN, "trainer.strategy=ddp", "tracking.experiment=ddp")
    assert ddp.returncode == 0, ddp.stdout + ddp.stderr
    assert ddp.stdout.count("test_accuracy=") == 1  # rank 0 reports; rank 1 stays quiet
    dlx.train_here(*RUN, "trainer.strategy=single", "tracking.experiment=single")

    client = dlx.client()
    [run] = dlx.runs("ddp")  # one MLflow run for the two processes
    [one] = dlx.runs("single")
    assert run.info.status == "FINISHED"
    assert run.data.tags["dlx.world_size"] == "2" and run.data.tags["dlx.backend"] == "gloo"

    # each rank saw its own shard: no row trained on by both, every row by one of them
    shards = json.loads(Path(client.download_artifacts(run.info.run_id, "distributed.json",
                                                       dlx.cwd)).read_text())
    assert shards["world_size"] == 2 and shards["rows_seen_by_several_ranks"] == 0
    assert shards["rows_seen"] == shards["rows"] == sum(shards["rows_per_rank"])
    assert min(shards["rows_per_rank"]) >= shards["rows"] // 2 - 32  # about half each

    # metrics follow the 1-process run within the stated tolerance
    ddp_val = _values(client, run.info.run_id, "val_loss")
    one_val = _values(client, one.info.run_id, "val_loss")
    assert len(ddp_val) == len(one_val) == 3
    assert max(abs(a - b) for a, b in zip(ddp_val, one_val)) <= 0.01, (ddp_val, one_val)
    assert abs(run.data.metrics["test_accuracy"] - one.data.metrics["test_accuracy"]) <= 0.01
    assert one.data.metrics["test_accuracy"] > 0.8

    # rank 1 leaves no run dir of its own
    assert len(list((dlx.cwd / "outputs" / "runs").glob("*/*"))) == 2


@pytest.mark.parametrize("args, message", [
    (["trainer.strategy=ddp"], "start it with `torchrun --nproc_per_node=N -m dlx train"),
    (["trainer.strategy=ring"], "trainer.strategy=ring is not one of auto, single, ddp"),
])
def test_ddp_outside_torchrun_is_one_clear_line(dlx, args, message):
    proc = dlx.train("model=logistic", "trainer.epochs=1", *args, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr
    assert all(r.info.status != "RUNNING" for r in dlx.runs())
