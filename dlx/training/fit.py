"""The fit loop: device-resident batches, one validation pass per epoch, metrics synced per epoch.

Read top to bottom, per epoch: lr -> (per batch) forward/backward -> clip -> step -> (epoch end)
read metrics once -> validate -> best/stop -> checkpoint -> report/log -> stop.
Everything beyond the plain loop is a keyword argument that is off by default, so
`fit(model, optimizer, data, epochs, batch_size, seed)` is plain mini-batch training.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from dlx.data import Bundle
from dlx.errors import TrainingError
from dlx.training.callbacks import Callback
from dlx.training.checkpoint import Checkpointer
from dlx.training.distributed import Group
from dlx.training.evaluation import correct, evaluate, loss_fn
from dlx.training.metrics import steps_per_epoch
from dlx.training.optim import undefer_dynamo
from dlx.training.regularizers import EarlyStopping
from dlx.training.schedulers import Schedule


@dataclass
class Loop:
    """What a callback may read while fit runs (on_fit_start): nothing here is to be changed."""

    model: nn.Module
    data: Bundle
    history: "History"
    state: Callable[[], dict]  # everything a checkpoint holds, as of the last completed epoch
    early_stopping: EarlyStopping | None
    stopping: bool = False  # set before on_epoch_end: training ends after this epoch


class History(list):
    """Per-epoch metrics (one dict per epoch, index 0 = epoch 1), plus how training ended."""

    best_epoch: int | None = None  # the best epoch by the monitored metric (None: no val split)
    stopped_epoch: int | None = None  # the epoch early stopping ended training at (None: it didn't)
    final_epoch: int | None = None  # the epoch whose weights the model holds at the end
    shards: dict | None = None  # DDP: the rows each rank trained on in the first epoch
    seconds: float = 0.0  # wall time spent in the epochs this fit ran

    @property
    def final(self) -> dict[str, float]:
        """The metrics of the weights the model ends with (the best epoch's when restored)."""
        return self[self.final_epoch - 1] if self.final_epoch else {}


def autocast(precision: str, device: torch.device):
    """The forward pass's autocast context for trainer.precision (fp32: none)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Bundle,
    epochs: int,
    batch_size: int,
    seed: int,
    callbacks: list[Callback] = (),
    *,
    penalty=None,  # () -> tensor added to every batch's loss (l1/l2); None: none
    early_stopping: EarlyStopping | None = None,  # tracks the best epoch; stops when it says so
    schedule: Schedule | None = None,  # the lr schedule; None: constant lr
    grad_clip: float = 0.0,  # max global grad norm; 0: no clipping
    precision: str = "fp32",  # fp32 | bf16 | fp16 (CUDA, with a grad scaler)
    compile: bool = False,  # train through torch.compile(model)
    channels_last: bool = False,  # conv nets: NHWC weights and batches (faster convolutions on GPUs)
    capture: bool = False,  # CUDA: the step compiled into CUDA graphs (torch.compile reduce-overhead)
    checkpoints: Checkpointer | None = None,  # writes last.pt / best.pt; None: no checkpoints
    resume: dict | None = None,  # a checkpoint's state: go on from its epoch + 1
    group: Group | None = None,  # trainer.strategy=ddp: this rank's DDP group; None: one process
) -> History:
    """Train `model` on data.train (already on its device); return per-epoch metrics."""
    task = data.spec.task
    criterion = loss_fn(task)
    x, y = data.train
    n, device = len(x), x.device
    steps = steps_per_epoch(n, batch_size, group.size if group else 1)
    shuffle = torch.Generator(device=device).manual_seed(seed)
    schedule = schedule or Schedule()
    amp = autocast(precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    if channels_last:
        model.to(memory_format=torch.channels_last)  # in place: the optimizer's parameters stay
    forward = group.wrap(model, device) if group else model  # DDP averages gradients over ranks
    if capture or compile:
        undefer_dynamo()
        forward = torch.compile(forward, **({"mode": "reduce-overhead"} if capture else {}))
    history = History()

    def state() -> dict:
        """Everything that makes epoch `done + 1` run as if training had never stopped."""
        return {
            "epoch": done, "history": list(history),
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(), "scaler": scaler.state_dict(),
            "early_stopping": early_stopping.state_dict() if early_stopping else None,
            "rng": {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
        }

    done = 0  # epochs completed
    loop = Loop(model, data, history, state, early_stopping)
    if resume is not None:
        done = _restore(resume, model, optimizer, schedule, scaler, early_stopping, shuffle, device)
        history.extend(resume["history"])
        if checkpoints:
            checkpoints.saved_epoch = done
        if early_stopping is not None and early_stopping.should_stop:  # it had already stopped
            history.stopped_epoch, epochs = done, done

    for cb in callbacks:
        cb.on_fit_start(loop)
    try:
        for epoch in range(done + 1, epochs + 1):
            began = time.perf_counter()
            for cb in callbacks:
                cb.on_epoch_start(epoch, epochs, steps)
            lr = optimizer.param_groups[0]["lr"]  # the rate this epoch starts at (logged)
            model.train()
            loss_sum = torch.zeros((), device=device)
            n_correct = torch.zeros((), device=device, dtype=torch.long)
            first_bad = torch.full((), -1, device=device, dtype=torch.long)  # first non-finite batch
            perm = torch.randperm(n, device=device, generator=shuffle)
            # DDP, first epoch: which rows this rank trained on (logged to show the shards)
            rows = torch.zeros(n, dtype=torch.bool, device=device) if group and not history else None
            for step in range(steps):
                # batch: a slice of the permutation, gathered on the device (no host copy)
                idx = perm[step * batch_size : (step + 1) * batch_size if step < steps - 1 else n]
                if group is not None:  # this rank's rows of the global batch
                    idx = group.shard(idx)
                    if rows is not None:
                        rows[idx] = True
                xb, yb = data.batch(x[idx], train=True), y[idx]
                if channels_last and xb.dim() == 4:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                if capture:  # a new step: the previous step's graph outputs may be reused
                    torch.compiler.cudagraph_mark_step_begin()
                # forward / backward (the scaler only scales for fp16)
                with amp:
                    out = forward(xb)
                    loss = criterion(out, yb)
                total = loss if penalty is None else loss + penalty()
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(total).backward()
                # clip, step, schedule
                if grad_clip > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                scaler.step(optimizer)
                scaler.update()
                schedule.after_batch()
                # running sums and the non-finite flag stay on the device until the epoch ends
                total = total.detach()
                first_bad = torch.where((first_bad < 0) & ~torch.isfinite(total), step, first_bad)
                loss_sum += loss.detach().float() * len(idx)
                if data.spec.is_classification:
                    n_correct += correct(out.detach(), yb, task)
                for cb in callbacks:
                    cb.on_batch_end(step)

            # epoch end: one sync for the training metrics; a non-finite loss stops the run here,
            # before anything is checkpointed, so last.pt stays the last good epoch
            if group is not None:  # the ranks' sums, one all-reduce per epoch
                group.sum(loss_sum, n_correct)
                group.max(first_bad)
                group.sync_buffers(model)  # batch-norm statistics: rank 0's, so validation agrees
                if rows is not None:
                    history.shards = group.describe(rows)
            check_finite(int(first_bad), epoch, steps, lr, grad_clip)
            metrics = epoch_metrics(model, data, loss_sum, n_correct, lr, batch_size)
            history.append(metrics)
            done = epoch

            # best / stop, then the epoch-end lr step (plateau reads the monitored metric)
            best = early_stopping.update(epoch, metrics, model) if early_stopping else False
            stop = early_stopping is not None and early_stopping.should_stop
            schedule.after_epoch(metrics)

            # checkpoint before logging: a logged epoch is always on disk (with checkpoint_every=1)
            if checkpoints:
                checkpoints(state, epoch, best=best, final=stop or epoch == epochs)
            history.seconds += time.perf_counter() - began
            loop.stopping = stop or epoch == epochs
            asked = [cb.on_epoch_end(epoch, metrics) for cb in callbacks]  # every one hears it
            if stop or any(asked):
                history.stopped_epoch = epoch
                break
    except KeyboardInterrupt:
        # Ctrl-C: keep the completed epochs on disk (only missing with checkpoint_every > 1;
        # such a checkpoint carries the weights of the moment of the interrupt)
        if checkpoints and done > checkpoints.saved_epoch:
            checkpoints(state, done, best=False, final=True)
        raise

    # end: the best epoch's weights when early stopping restores them
    history.best_epoch = early_stopping.best_epoch if early_stopping else None
    restored = early_stopping.restore(model) if early_stopping else None
    history.final_epoch = restored or len(history)
    return history


def check_finite(bad: int, epoch: int, steps: int, lr: float, grad_clip: float) -> None:
    """A non-finite loss in batch `bad` (-1: none) stops the run with what to change."""
    if bad >= 0:
        raise TrainingError(
            f"loss became non-finite in epoch {epoch}, batch {bad + 1}/{steps}: the learning rate "
            f"is probably too high: lower optimizer.lr (it was {lr:g})"
            f"{' or clip gradients, e.g. trainer.grad_clip=1.0' if not grad_clip else ''}")


def epoch_metrics(model: nn.Module, data: Bundle, loss_sum: torch.Tensor, n_correct: torch.Tensor,
                  lr: float, batch_size: int) -> dict[str, float]:
    """An epoch's metrics: the training sums read once, and a validation pass."""
    n, task = len(data.train[0]), data.spec.task
    metrics = {"train_loss": loss_sum.item() / n, "lr": lr}
    if data.spec.is_classification:
        metrics["train_accuracy"] = n_correct.item() / n
    if data.val is not None:
        val, _ = evaluate(model, *data.val, task, batch_size, data.transform)
        metrics.update({f"val_{k}": v for k, v in val.items()})
    return metrics


def _restore(state, model, optimizer, schedule, scaler, early_stopping, shuffle, device) -> int:
    """Load a checkpoint's state into the freshly built objects; return its epoch."""
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise TrainingError(f"the checkpoint does not fit this model/optimizer: "
                            f"{str(e).splitlines()[0]}") from e
    schedule.load_state_dict(state["schedule"])
    scaler.load_state_dict(state["scaler"])
    if early_stopping is not None and state["early_stopping"] is not None:
        early_stopping.load_state_dict(state["early_stopping"])
    torch.set_rng_state(state["rng"]["torch"])
    shuffle.set_state(state["rng"]["shuffle"])
    if device.type == "cuda" and state["rng"]["cuda"] is not None:
        torch.cuda.set_rng_state(state["rng"]["cuda"], device)
    return state["epoch"]
