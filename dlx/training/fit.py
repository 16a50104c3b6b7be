"""The fit loop: device-resident batches, one validation pass per epoch, metrics synced per epoch.

Read top to bottom: shuffle -> forward -> loss -> backward -> step -> (epoch end) read metrics
once -> validate -> report/log.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlx.data import Bundle
from dlx.errors import TrainingError
from dlx.training.metrics import correct, evaluate, loss_fn


class Callback:
    """What the loop tells the outside world; the CLI draws progress, tracking logs metrics."""

    def on_epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...
    def on_batch_end(self, step: int) -> None: ...
    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None: ...


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Bundle,
    epochs: int,
    batch_size: int,
    seed: int,
    callbacks: list[Callback] = (),
) -> list[dict[str, float]]:
    """Train `model` on data.train (already on its device); return per-epoch metrics."""
    task = data.spec.task
    criterion = loss_fn(task)
    x, y = data.train
    n, device = len(x), x.device
    steps = math.ceil(n / batch_size)
    shuffle = torch.Generator(device=device).manual_seed(seed)
    history = []
    for epoch in range(1, epochs + 1):
        for cb in callbacks:
            cb.on_epoch_start(epoch, epochs, steps)
        model.train()
        loss_sum = torch.zeros((), device=device)
        n_correct = torch.zeros((), device=device, dtype=torch.long)
        perm = torch.randperm(n, device=device, generator=shuffle)
        for step in range(steps):
            # batch: a slice of the permutation, gathered on the device (no host copy)
            idx = perm[step * batch_size : (step + 1) * batch_size]
            xb, yb = data.batch(x[idx], train=True), y[idx]
            # forward / backward / step
            out = model(xb)
            loss = criterion(out, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            # running sums stay on the device until the epoch ends
            loss_sum += loss.detach() * len(idx)
            if task != "regression":
                n_correct += correct(out.detach(), yb, task)
            for cb in callbacks:
                cb.on_batch_end(step)

        # epoch end: one sync for the training metrics, then a validation pass
        metrics = {"train_loss": loss_sum.item() / n}
        if not math.isfinite(metrics["train_loss"]):
            raise TrainingError(
                f"loss became {metrics['train_loss']} in epoch {epoch}: the learning rate is "
                "probably too high (lower optimizer.lr)"
            )
        if task != "regression":
            metrics["train_accuracy"] = n_correct.item() / n
        if data.val is not None:
            val, _ = evaluate(model, *data.val, task, batch_size, data.transform)
            metrics.update({f"val_{k}": v for k, v in val.items()})
        history.append(metrics)
        for cb in callbacks:
            cb.on_epoch_end(epoch, metrics)
    return history
