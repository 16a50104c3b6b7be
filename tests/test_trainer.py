"""Trainer options: precision, gradient clipping, deterministic mode, torch.compile.

fp16 and compiled training on CUDA need a GPU; here the CPU paths run (bf16 autocast works on a
CPU; fp16 there is a clear error) and compile runs on the CPU in the slow suite.
"""

import pytest
import torch


def test_bf16_deterministic_clipped_training_still_learns(dlx):
    dlx.train("model=mlp", "model.hidden_sizes=[64]", "trainer.epochs=6", "trainer.device=cpu",
              "trainer.precision=bf16",
              "trainer.deterministic=true", "trainer.grad_clip=1.0", "trainer.checkpoint_every=0")
    (run,) = dlx.runs()
    assert run.info.status == "FINISHED"
    assert run.data.params["trainer.precision"] == "bf16"
    assert run.data.metrics["test_accuracy"] > 0.85, run.data.metrics


def test_fp16_without_cuda_is_one_line_before_any_run(dlx):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = dlx.train("model=mlp", "trainer.epochs=1", "trainer.precision=fp16", check=False)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert "trainer.precision=fp16 needs a CUDA device" in line and "bf16" in line
    assert dlx.runs() == []


@pytest.mark.slow
def test_compiled_training_matches_eager_accuracy(dlx):
    dlx.train("model=mlp", "trainer.epochs=3", "trainer.device=cpu", "trainer.compile=true")
    (run,) = dlx.runs()
    assert run.info.status == "FINISHED" and run.data.metrics["test_accuracy"] > 0.85


# ---------------------------------------------------------------- the pieces, in-process (fast)
def _data(n=64):
    from dlx.data.bundle import Bundle, Spec

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


# ---------------------------------------------------------------- fast paths: what `auto` picks
def _trainer(**kw):
    from omegaconf import OmegaConf

    return OmegaConf.create({"precision": "auto", "channels_last": "auto", "capture": "auto",
                             "deterministic": False, **kw})


def test_auto_fast_paths_pick_bf16_and_capture_on_cuda_and_channels_last_for_conv_nets(monkeypatch):
    from dlx.training.device import CAPTURE_MIN_STEPS, fast_paths

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten())
    dense = torch.nn.Linear(4, 2)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    long = CAPTURE_MIN_STEPS
    assert fast_paths(_trainer(), cuda, conv, long) == {
        "precision": "bf16", "channels_last": True, "capture": True}
    assert fast_paths(_trainer(), cuda, dense, long - 1) == {
        "precision": "bf16", "channels_last": False, "capture": False}
    assert fast_paths(_trainer(deterministic=True), cuda, conv, long)["capture"] is False
    assert fast_paths(_trainer(), cpu, conv, long) == {
        "precision": "fp32", "channels_last": True, "capture": False}
    assert fast_paths(_trainer(), cpu, dense, long)["channels_last"] is False
    # explicit choices win over auto
    assert fast_paths(_trainer(precision="fp32", channels_last="false", capture="false"),
                      cuda, conv, long) == {"precision": "fp32", "channels_last": False, "capture": False}
    assert fast_paths(_trainer(channels_last="true"), cpu, conv, 1)["channels_last"] is True


def test_channels_last_on_cpu_trains_and_the_choices_are_tagged(dlx):
    dlx.train("model=cnn", "trainer.epochs=3", "trainer.device=cpu", "trainer.channels_last=true",
              "trainer.checkpoint_every=0")
    (run,) = dlx.runs()
    tags = run.data.tags
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


@pytest.mark.slow
def test_the_captured_step_code_path_trains(recwarn):
    """capture=True compiles the step with mode="reduce-overhead" and marks each step's start;
    on a CPU Inductor skips the CUDA graphs but runs the same loop code (the GPU part needs CUDA)."""
    from dlx.training.fit import fit

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    history = fit(model, torch.optim.Adam(model.parameters(), lr=1e-2), _data(256), 3, 32, 0,
                  capture=True)
    assert len(history) == 3 and history[-1]["train_loss"] < history[0]["train_loss"]
