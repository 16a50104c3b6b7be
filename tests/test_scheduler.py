"""Learning-rate schedules: the lr logged per epoch follows the configured curve (dlx.run.train
in this process, as `dlx train` runs it)."""

import math

import pytest
import torch
from omegaconf import OmegaConf

FAST_LINEAR = ("model=linear", "dataset=synthetic_linear", "optimizer=sgd", "optimizer.lr=0.1",
               "trainer.device=cpu", "trainer.checkpoint_every=0")


def _lr_curve(dlx):
    (run,) = dlx.runs()
    history = sorted(dlx.client().get_metric_history(run.info.run_id, "lr"), key=lambda m: m.step)
    assert [m.step for m in history] == list(range(1, len(history) + 1))
    return [m.value for m in history]


def test_step_schedule_logs_the_stepped_lr_per_epoch(dlx):
    dlx.train_here(*FAST_LINEAR, "trainer.epochs=7", "scheduler=step", "scheduler.step_size=2",
                   "scheduler.gamma=0.5")
    assert _lr_curve(dlx) == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125])


def test_cosine_schedule_warms_up_then_decays_to_min_lr(dlx):
    dlx.train_here(*FAST_LINEAR, "trainer.epochs=8", "scheduler=cosine",
                   "scheduler.warmup_epochs=2", "scheduler.min_lr=0.01")
    warmup = [0.1 * (i + 1) / 3 for i in range(2)]
    decay = [0.01 + 0.09 * (1 + math.cos(math.pi * t / 6)) / 2 for t in range(6)]
    assert _lr_curve(dlx) == pytest.approx(warmup + decay)


# ---------------------------------------------------------------- the pieces, in-process (fast)
def _opt(lr=0.1):
    return torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=lr, momentum=0.9)


def test_plateau_drops_the_lr_when_the_monitored_metric_stalls():
    from dlx.training import schedulers

    opt = _opt()
    cfg = OmegaConf.create({"name": "plateau", "monitor": "val_accuracy", "mode": "max",
                            "factor": 0.5, "patience": 1, "threshold": 0.0, "min_lr": 0.0})
    schedule = schedulers.build(cfg, opt, epochs=10, steps_per_epoch=4)
    lrs = []
    for acc in [0.5, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7]:
        lrs.append(opt.param_groups[0]["lr"])
        schedule.after_batch()  # per-epoch schedules ignore batches
        schedule.after_epoch({"val_accuracy": acc, "val_loss": 1.0})
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)


def test_onecycle_steps_per_batch_peaks_at_max_lr_and_ends_low():
    from dlx.training import schedulers

    opt = _opt()
    cfg = OmegaConf.create({"name": "onecycle", "max_lr": 0.1, "pct_start": 0.25,
                            "div_factor": 10.0, "final_div_factor": 100.0, "cycle_momentum": False})
    schedule = schedulers.build(cfg, opt, epochs=4, steps_per_epoch=5)
    lrs = []
    for _ in range(4):
        for _ in range(5):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            schedule.after_batch()
        schedule.after_epoch({})
    assert lrs[0] == pytest.approx(0.01) and max(lrs) == pytest.approx(0.1)
    assert lrs.index(max(lrs)) == 4  # pct_start * 20 steps - 1
    assert lrs[-1] < 0.01
