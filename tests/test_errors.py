"""Bad input: a non-zero exit, one line naming the problem, and no run left RUNNING."""

import signal
import subprocess
import sys
import time

import pytest
import torch

BAD = [
    (["model=nope"], "Could not find 'model/nope'; Available options in 'model': autoencoder, cnn,"),
    (["optimizer.lr=-1"], "optimizer.lr=-1.0 must be > 0"),
    (["trainer.device=tpu"], "trainer.device=tpu is not one of auto, cpu, cuda, cuda:N"),
    (["trainer.epochs=abc"], "trainer.epochs"),
    (["dataset.batch_size=0"], "dataset.batch_size=0 must be > 0"),
    (["trainer.epochz=3"], "trainer.epochz"),
    (["model.activation=swish", "model=mlp"], "model.activation=swish is not one of"),
    (["model=logistic", "dataset=synthetic_linear"], "use model=linear"),
    (["model=cnn", "dataset=synthetic_logistic"], "model=cnn needs image data"),
    (["trainer.monitor=val_accuracy", "dataset=synthetic_linear", "model=linear"],
     "trainer.monitor=val_accuracy is not logged"),
    (["model=[cnn"], "no viable alternative"),
]


def _no_running(dlx):
    return all(r.info.status != "RUNNING" for r in dlx.runs())


@pytest.mark.parametrize("overrides,message", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_override_fails_with_one_clear_line(dlx, overrides, message):
    proc = dlx.train(*overrides, "trainer.epochs=1", check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dlx: error: ") and message in lines[0], lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert _no_running(dlx)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it_is_an_error_not_a_fallback(dlx):
    proc = dlx.train("trainer.device=cuda", "trainer.epochs=1", check=False)
    assert proc.returncode == 1
    assert "no usable CUDA device" in proc.stderr and "trainer.device=cpu" in proc.stderr
    assert dlx.runs() == []


def test_diverging_training_ends_the_run_failed(dlx):
    proc = dlx.train("optimizer=sgd", "optimizer.lr=1e6", "trainer.epochs=3", check=False)
    assert proc.returncode == 1
    assert "learning rate is probably too high" in proc.stderr
    (run,) = dlx.runs()
    assert run.info.status == "FAILED"


def test_interrupt_ends_the_run_killed_with_exit_130(dlx):
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlx", "train", "trainer.epochs=500", "trainer.progress=false",
         "tracking.log_model=false"],
        cwd=dlx.cwd, env=dlx.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # wait until training is under way
        if line.startswith("epoch 2:"):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "KILLED" in err
    (run,) = dlx.runs()
    assert run.info.status == "KILLED"


def test_sigterm_also_ends_the_run_killed(dlx):
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlx", "train", "trainer.epochs=500", "trainer.progress=false",
         "tracking.log_model=false", "model=mlp"],
        cwd=dlx.cwd, env=dlx.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("epoch 2:"):
            break
    proc.terminate()
    proc.communicate(timeout=60)
    time.sleep(0.1)
    assert proc.returncode == 130
    (run,) = dlx.runs()
    assert run.info.status == "KILLED"
