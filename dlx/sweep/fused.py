"""Fused sweep points: points that differ only in optimizer.lr train as K stacked copies.

Every step runs the K copies' forward and backward as one (torch.func: the copies' parameters
stacked, `functional_call` under `vmap`, dropout with randomness="same" so each copy draws what
its own run draws), over one batch stream; each copy keeps its own module, optimizer (its lr),
schedule, early stopping, checkpoints and MLflow run, so it trains exactly as its separate run
(in float64 they agree to ~1e-11: tests/). A copy that diverges or stops early leaves the stack.
Small networks are launch-bound on a GPU, where this pays; on a CPU it does not (a measured
probe here was 0.44-1.47x a loop), so `hydra.launcher.fuse=auto` fuses only on CUDA and only
when a short timing probe shows a gain; `true` fuses wherever it can (tests), `false` never.
Not for recurrent networks (no vmap batching rule) nor batch norm (running statistics are
updated in place).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dlx.errors import ConfigError, DlxError
from dlx.training.evaluation import correct, loss_fn
from dlx.training.fit import History, check_finite, epoch_metrics
from dlx.training.metrics import steps_per_epoch


def unfusable(model: nn.Module) -> str | None:
    """Why this network cannot be stacked, or None."""
    if any(isinstance(m, nn.RNNBase) for m in model.modules()):
        return "recurrent layers have no vmap batching rule"
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return "batch norm updates its running statistics in place"
    return None


@dataclass
class Copy:
    """One point of a fused group: its network and everything that trains it."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    options: dict  # fit's keyword options: penalty, early_stopping, schedule, grad_clip, ...
    callbacks: list = field(default_factory=list)
    checkpoints: Any = None
    history: History = field(default_factory=History)
    error: BaseException | None = None
    done: bool = False
    lr: float = 0.0  # the rate the current epoch started at (logged)

    def state(self, shuffle) -> dict:
        """What its own run's checkpoint holds after the last completed epoch."""
        es = self.options.get("early_stopping")
        return {"epoch": len(self.history), "history": list(self.history),
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.options["schedule"].state_dict(), "scaler": None,
                "early_stopping": es.state_dict() if es else None,
                "rng": {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state(), "cuda": None}}


def fit(copies: list[Copy], data, epochs: int, batch_size: int, seed: int) -> None:
    """Train the copies (already on the data's device) together, each as `dlx.training.fit`
    would alone; a copy's failure is kept on it (copy.error), the others go on."""
    from torch.func import functional_call, vmap

    from dlx.training.fit import autocast

    task, criterion = data.spec.task, loss_fn(data.spec.task)
    x, y = data.train
    n, device = len(x), x.device
    options = copies[0].options  # the points differ only in their lr: the same fast paths
    amp, channels_last = autocast(options.get("precision", "fp32"), device), options.get("channels_last")
    for c in copies:
        if channels_last:
            c.model.to(memory_format=torch.channels_last)
    steps = steps_per_epoch(n, batch_size)
    shuffle = torch.Generator(device=device).manual_seed(seed)
    base = copies[0].model
    names = [k for k, _ in base.named_parameters()]
    buffers = [k for k, _ in base.named_buffers()]

    def one(params, bufs, xb):
        return functional_call(base, {**params, **bufs}, (xb,))

    stacked = vmap(one, in_dims=(0, 0, None), randomness="same")
    for epoch in range(1, epochs + 1):
        live = [c for c in copies if not c.done]
        if not live:
            break
        began = time.perf_counter()
        for c in live:
            c.model.train()
            c.lr = c.optimizer.param_groups[0]["lr"]
        k = len(live)
        loss_sum = torch.zeros(k, device=device)
        n_correct = torch.zeros(k, device=device, dtype=torch.long)
        first_bad = torch.full((k,), -1, device=device, dtype=torch.long)
        perm = torch.randperm(n, device=device, generator=shuffle)
        for step in range(steps):
            idx = perm[step * batch_size : (step + 1) * batch_size if step < steps - 1 else n]
            xb, yb = data.batch(x[idx], train=True), y[idx]
            if channels_last and xb.dim() == 4:
                xb = xb.contiguous(memory_format=torch.channels_last)
            params = {p: torch.stack([dict(c.model.named_parameters())[p] for c in live]) for p in names}
            bufs = {b: torch.stack([dict(c.model.named_buffers())[b] for c in live]) for b in buffers}
            with amp:
                out = stacked(params, bufs, xb)  # (K, batch, ...): grads flow back to each copy
                losses = torch.stack([criterion(out[i], yb) for i in range(k)])
            totals = torch.stack([losses[i] + (c.options["penalty"]() if c.options["penalty"] else 0)
                                  for i, c in enumerate(live)])
            for c in live:
                c.optimizer.zero_grad(set_to_none=True)
            totals.sum().backward()
            for c in live:
                if c.options["grad_clip"] > 0:
                    nn.utils.clip_grad_norm_(c.model.parameters(), c.options["grad_clip"])
                c.optimizer.step()
                c.options["schedule"].after_batch()
            totals = totals.detach()
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(totals), step, first_bad)
            loss_sum += losses.detach().float() * len(idx)
            if data.spec.is_classification:
                n_correct += torch.stack([correct(out[i].detach(), yb, task) for i in range(k)])
        seconds = time.perf_counter() - began
        for i, c in enumerate(live):
            _epoch_end(c, i, epoch, epochs, steps, first_bad, loss_sum, n_correct, data,
                       batch_size, shuffle, seconds)
    for c in copies:  # the end, for each: the best epoch's weights when early stopping restores them
        es = c.options.get("early_stopping")
        c.history.best_epoch = es.best_epoch if es else None
        restored = es.restore(c.model) if es and not c.error else None
        c.history.final_epoch = restored or len(c.history)


def _epoch_end(c: Copy, i, epoch, epochs, steps, first_bad, loss_sum, n_correct, data,
               batch_size, shuffle, seconds) -> None:
    """One copy's epoch end, as fit's: metrics, best/stop, lr step, checkpoint, callbacks."""
    try:
        check_finite(int(first_bad[i]), epoch, steps, c.lr, c.options["grad_clip"])
    except DlxError as e:
        c.error, c.done = e, True
        return
    metrics = epoch_metrics(c.model, data, loss_sum[i], n_correct[i], c.lr, batch_size)
    c.history.append(metrics)
    c.history.seconds += seconds
    es = c.options.get("early_stopping")
    best = es.update(epoch, metrics, c.model) if es else False
    stop = es is not None and es.should_stop
    c.options["schedule"].after_epoch(metrics)
    if c.checkpoints:
        c.checkpoints(lambda: c.state(shuffle), epoch, best=best, final=stop or epoch == epochs)
    for cb in c.callbacks:
        cb.on_epoch_end(epoch, metrics)
    if stop or epoch == epochs:
        c.history.stopped_epoch = epoch if stop else None
        c.done = True


def check(mode: str, model: nn.Module, options: dict, example: torch.Tensor) -> bool:
    """hydra.launcher.fuse for this group: fuse or not (`true` where it cannot: one line)."""
    why = unfusable(model) or ("trainer.compile / capture compile one model" if
                               options.get("compile") or options.get("capture") else None)
    if mode == "true" and why:
        raise ConfigError(f"hydra.launcher.fuse=true cannot stack these points: {why} (use "
                          "hydra.launcher.fuse=auto or false)")
    if why or mode == "false":
        return False
    if mode == "true":
        return True
    if example.device.type != "cuda":
        return False
    with torch.random.fork_rng(devices=[example.device]):  # the runs draw what they would
        return _faster(model, example)


def _faster(model: nn.Module, xb: torch.Tensor, k: int = 4, steps: int = 5) -> bool:
    """auto's probe: k stacked copies' forward+backward against k separate ones, timed here."""
    import copy

    from torch.func import functional_call, stack_module_state, vmap

    copies = [copy.deepcopy(model).train() for _ in range(k)]
    params, bufs = stack_module_state(copies)
    stacked = vmap(lambda p, b, x: functional_call(copies[0], {**p, **b}, (x,)),
                   in_dims=(0, 0, None), randomness="same")

    def separate():
        for m in copies:
            m(xb).float().sum().backward()

    def together():
        stacked(params, bufs, xb).float().sum().backward()

    times = []
    for run in (separate, together):
        run()  # warm-up
        torch.cuda.synchronize(xb.device)
        began = time.perf_counter()
        for _ in range(steps):
            run()
        torch.cuda.synchronize(xb.device)
        times.append(time.perf_counter() - began)
    return times[1] < times[0]


# ------------------------------------------------------------------- the launcher <-> train()
_OFFER: dict[str, Any] = {}  # the points that may join the training under way, and the mode


def offering(points: list, mode: str):
    """While the first point of a group trains, the others are offered to it."""
    import contextlib

    @contextlib.contextmanager
    def scope():
        _OFFER.update(points=points, mode=mode)
        try:
            yield
        finally:
            _OFFER.clear()
    return scope()


def train(cfg, data, model, options: dict, recorder, identity: dict, setup,
          callbacks=()):
    """Train this point and the offered ones stacked, when `hydra.launcher.fuse` says so; the
    Result fields of this point, or None to train it alone (the others then train alone too).
    `setup(cfg, model)` builds a point's optimizer and fit options as its own run does."""
    import copy

    from dlx.sweep import prefix
    from dlx.tracking.recorder import Recorder
    from dlx.training import checkpoint, evaluation

    points = _OFFER.get("points") or []
    if not points or not check(_OFFER["mode"], model, options, data.batch(data.train[0][:2], False)):
        return None
    _OFFER.clear()
    every, main = cfg.trainer.checkpoint_every, recorder.main
    entries = [(cfg, recorder, model)]  # this point's: it keeps the CLI's progress too
    for p in points:  # the same initial weights: the points differ only in optimizer.lr
        rec = Recorder(p.cfg, p.runtime(recorder.started), main)
        rec.start(data, options, None, True)  # this point's training read it
        entries.append((p.cfg, rec, copy.deepcopy(model)))
    copies = []
    for c, rec, m in entries:
        optimizer, opts = setup(c, m)
        meta = rec.checkpoint_meta(identity, " ".join(rec.runtime.overrides))
        ckpt = checkpoint.Checkpointer(rec.output_dir / checkpoint.DIR, every, meta) \
            if every > 0 and main else None
        copies.append(Copy(m, optimizer, opts, [*(callbacks if rec is recorder else []), rec], ckpt))
    fit(copies, data, cfg.trainer.epochs, cfg.dataset.batch_size, cfg.trainer.seed)
    results = []
    for (c, rec, m), cp in zip(entries, copies):
        if cp.error is not None:
            rec.end("FAILED")
            results.append(cp.error)
            continue
        scores = evaluation.score(m, data.test, data.spec.task, c.dataset.batch_size, data.transform)
        rec.tags({"dlx.fused_with": str(len(entries))})
        rec.finish(cp.history, scores, data, m, options)
        rec.end("FINISHED")
        results.append({"objective": cp.history.final.get(c.trainer.monitor), "test": scores.metrics,
                        "epochs": len(cp.history), "output_dir": str(rec.output_dir),
                        "run_id": rec.run_id, "run_name": rec.name, "link": rec.link})
    for p, result in zip(points, results[1:]):
        prefix.store(p.output_dir, result)
    if isinstance(results[0], BaseException):
        raise results[0]
    return results[0]
