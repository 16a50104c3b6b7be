"""The fit loop: device-resident batches, one validation pass per epoch, metrics synced per epoch.

Read top to bottom, per epoch: lr -> (per batch) forward/backward -> clip -> step -> (epoch end)
read metrics once -> validate -> best/stop -> checkpoint -> report/log -> stop.
Everything beyond the plain loop is a keyword argument that is off by default, so
`fit(model, optimizer, data, epochs, batch_size, seed)` is plain mini-batch training.

The one loop, `train(members, ...)`, trains K networks over one batch stream: a plain run is one
`Member`; sweep points that differ only in optimizer.lr are K members, stacked (torch.func: their
parameters stacked, `functional_call` under `vmap`, dropout with randomness="same" so each draws
what its own run draws). Each member keeps its own optimizer (its lr), schedule, early stopping,
checkpoints and callbacks, so it trains exactly as it would alone; one that diverges leaves the
stack with its error kept (member.error), the others go on.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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


@dataclass
class Member:
    """One network of a training and everything that trains it. `options` are fit's keyword
    options (penalty, early_stopping, schedule, grad_clip, precision, compile, channels_last,
    capture); the members of one training differ only in their optimizer's lr."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    options: dict
    callbacks: list = field(default_factory=list)
    checkpoints: Checkpointer | None = None
    history: History = field(default_factory=History)
    error: BaseException | None = None  # what ended it (a non-finite loss); the others go on
    done: bool = False
    loop: Loop | None = None  # what its callbacks read (set when training starts)

    def option(self, name: str, default=None):
        value = self.options.get(name)
        return default if value is None else value


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
    precision_why: str = "",  # why that precision (trainer.precision=auto's reason; the run tags it)
    compile: bool = False,  # train through torch.compile(model)
    channels_last: bool = False,  # conv nets: NHWC weights and batches (faster convolutions on GPUs)
    capture: bool = False,  # CUDA: the step compiled into CUDA graphs (torch.compile reduce-overhead)
    threads: int | None = None,  # CPU: torch's threads while this fit runs (None: as they are)
    checkpoints: Checkpointer | None = None,  # writes last.pt / best.pt; None: no checkpoints
    resume: dict | None = None,  # a checkpoint's state: go on from its epoch + 1
    group: Group | None = None,  # trainer.strategy=ddp: this rank's DDP group; None: one process
) -> History:
    """Train `model` on data.train (already on its device); return per-epoch metrics."""
    member = Member(model, optimizer, {
        "penalty": penalty, "early_stopping": early_stopping, "schedule": schedule,
        "grad_clip": grad_clip, "precision": precision, "precision_why": precision_why,
        "compile": compile, "channels_last": channels_last, "capture": capture,
        "threads": threads}, list(callbacks), checkpoints)
    train([member], data, epochs, batch_size, seed, resume=resume, group=group)
    if member.error is not None:
        raise member.error
    return member.history


def train(members: list[Member], data: Bundle, epochs: int, batch_size: int, seed: int, *,
          resume: dict | None = None, group: Group | None = None) -> None:
    """Train the members (already on the data's device) over one batch stream, each as it would
    train alone; a member's non-finite loss is kept on it (member.error) and it stops, the
    others go on. `resume` and `group` (DDP) are for one member."""
    threads, before = members[0].option("threads"), torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        _train(members, data, epochs, batch_size, seed, resume, group)
    finally:
        torch.set_num_threads(before)


def _train(members: list[Member], data: Bundle, epochs: int, batch_size: int, seed: int,
           resume: dict | None, group: Group | None) -> None:
    task = data.spec.task
    criterion = loss_fn(task)
    x, y = data.train
    n, device = len(x), x.device
    steps = steps_per_epoch(n, batch_size, group.size if group else 1)
    shuffle = torch.Generator(device=device).manual_seed(seed)
    first = members[0]  # the members differ only in their lr: the same fast paths
    precision, channels_last = first.option("precision", "fp32"), first.option("channels_last", False)
    capture, compiled = first.option("capture", False), first.option("compile", False)
    amp = autocast(precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    for m in members:
        m.options["schedule"] = m.option("schedule") or Schedule()
        if channels_last:
            m.model.to(memory_format=torch.channels_last)  # in place: the optimizer's parameters stay
    forward = _forward(members, group, device, capture, compiled)

    def state(m: Member) -> dict:
        """Everything that makes epoch `done + 1` run as if training had never stopped."""
        es = m.option("early_stopping")
        return {
            "epoch": len(m.history), "history": list(m.history),
            "model": m.model.state_dict(), "optimizer": m.optimizer.state_dict(),
            "schedule": m.options["schedule"].state_dict(), "scaler": scaler.state_dict(),
            "early_stopping": es.state_dict() if es else None,
            "rng": {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
        }

    done = 0  # epochs completed
    for m in members:
        m.loop = Loop(m.model, data, m.history, lambda m=m: state(m), m.option("early_stopping"))
    if resume is not None:
        (m,) = members
        done = _restore(resume, m, scaler, shuffle, device)
        m.history.extend(resume["history"])
        if m.checkpoints:
            m.checkpoints.saved_epoch = done
        if m.loop.early_stopping is not None and m.loop.early_stopping.should_stop:  # it had stopped
            m.history.stopped_epoch, epochs = done, done

    for m in members:
        for cb in m.callbacks:
            cb.on_fit_start(m.loop)
    try:
        for epoch in range(done + 1, epochs + 1):
            live = [m for m in members if not m.done]
            if not live:
                break
            began = time.perf_counter()
            for m in live:
                for cb in m.callbacks:
                    cb.on_epoch_start(epoch, epochs, steps)
                m.model.train()
            lrs = [m.optimizer.param_groups[0]["lr"] for m in live]  # the rates this epoch starts at
            zero = torch.zeros((), device=device)
            loss_sum = [zero.clone() for _ in live]
            n_correct = [torch.zeros((), device=device, dtype=torch.long) for _ in live]
            first_bad = [torch.full((), -1, device=device, dtype=torch.long) for _ in live]  # batch
            perm = torch.randperm(n, device=device, generator=shuffle)
            # DDP, first epoch: which rows this rank trained on (logged to show the shards)
            rows = torch.zeros(n, dtype=torch.bool, device=device) if group and not live[0].history \
                else None
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
                    outs = forward(live, xb)
                    losses = [criterion(out, yb) for out in outs]
                totals = [loss if m.options["penalty"] is None else loss + m.options["penalty"]()
                          for m, loss in zip(live, losses)]
                for m in live:
                    m.optimizer.zero_grad(set_to_none=True)
                scaler.scale(totals[0] if len(live) == 1 else torch.stack(totals).sum()).backward()
                # clip, step, schedule
                for m in live:
                    if m.option("grad_clip", 0.0) > 0:
                        scaler.unscale_(m.optimizer)
                        nn.utils.clip_grad_norm_(m.model.parameters(), m.options["grad_clip"])
                    scaler.step(m.optimizer)
                scaler.update()
                # running sums and the non-finite flags stay on the device until the epoch ends
                for i, m in enumerate(live):
                    m.options["schedule"].after_batch()
                    total = totals[i].detach()
                    first_bad[i] = torch.where((first_bad[i] < 0) & ~torch.isfinite(total), step,
                                               first_bad[i])
                    loss_sum[i] += losses[i].detach().float() * len(idx)
                    if data.spec.is_classification:
                        n_correct[i] += correct(outs[i].detach(), yb, task)
                    for cb in m.callbacks:
                        cb.on_batch_end(step)

            # epoch end, per member: one sync for the training metrics; a non-finite loss stops
            # that member here, before anything is checkpointed, so last.pt stays its last good epoch
            seconds = time.perf_counter() - began
            for i, m in enumerate(live):
                if group is not None:  # the ranks' sums, one all-reduce per epoch
                    group.sum(loss_sum[i], n_correct[i])
                    group.max(first_bad[i])
                    group.sync_buffers(m.model)  # batch-norm statistics: rank 0's, so validation agrees
                    if rows is not None:
                        m.history.shards = group.describe(rows)
                try:
                    check_finite(int(first_bad[i]), epoch, steps, lrs[i], m.option("grad_clip", 0.0))
                except TrainingError as e:
                    m.error, m.done = e, True
                    continue
                _epoch_end(m, epoch, epochs, data, loss_sum[i], n_correct[i], lrs[i], batch_size,
                           seconds)
    except KeyboardInterrupt:
        # Ctrl-C: keep the completed epochs on disk (only missing with checkpoint_every > 1;
        # such a checkpoint carries the weights of the moment of the interrupt)
        for m in members:
            if m.checkpoints and len(m.history) > m.checkpoints.saved_epoch:
                m.checkpoints(m.loop.state, len(m.history), best=False, final=True)
        raise

    # end: the best epoch's weights when early stopping restores them
    for m in members:
        es = m.loop.early_stopping
        m.history.best_epoch = es.best_epoch if es else None
        restored = es.restore(m.model) if es and m.error is None else None
        m.history.final_epoch = restored or len(m.history)


def _epoch_end(m: Member, epoch: int, epochs: int, data: Bundle, loss_sum, n_correct, lr: float,
               batch_size: int, seconds: float) -> None:
    """A member's epoch end: metrics, best/stop, the epoch-end lr step, checkpoint, callbacks."""
    metrics = epoch_metrics(m.model, data, loss_sum, n_correct, lr, batch_size)
    m.history.append(metrics)

    # best / stop, then the epoch-end lr step (plateau reads the monitored metric)
    es = m.loop.early_stopping
    best = es.update(epoch, metrics, m.model) if es else False
    stop = es is not None and es.should_stop
    m.options["schedule"].after_epoch(metrics)

    # checkpoint before logging: a logged epoch is always on disk (with checkpoint_every=1)
    if m.checkpoints:
        m.checkpoints(m.loop.state, epoch, best=best, final=stop or epoch == epochs)
    m.history.seconds += seconds
    m.loop.stopping = stop or epoch == epochs
    asked = [cb.on_epoch_end(epoch, metrics) for cb in m.callbacks]  # every one hears it
    if stop or any(asked):
        m.history.stopped_epoch = epoch
    m.done = m.loop.stopping or any(asked)


def _forward(members: list[Member], group: Group | None, device: torch.device, capture: bool,
             compiled: bool) -> Callable[[list[Member], torch.Tensor], list[torch.Tensor]]:
    """forward(live members, batch) -> each member's output. One network: itself (DDP-wrapped,
    compiled where asked); several: stacked under vmap, gradients flowing back to each."""
    if len(members) == 1:
        model = members[0].model
        net = group.wrap(model, device) if group else model  # DDP averages gradients over ranks
        if capture or compiled:
            undefer_dynamo()
            net = torch.compile(net, **({"mode": "reduce-overhead"} if capture else {}))
        return lambda live, xb: [net(xb)]

    from torch.func import functional_call, vmap

    base = members[0].model
    names = [k for k, _ in base.named_parameters()]
    buffers = [k for k, _ in base.named_buffers()]
    stacked = vmap(lambda params, bufs, xb: functional_call(base, {**params, **bufs}, (xb,)),
                   in_dims=(0, 0, None), randomness="same")

    def forward(live: list[Member], xb: torch.Tensor) -> list[torch.Tensor]:
        named = [(dict(m.model.named_parameters()), dict(m.model.named_buffers())) for m in live]
        params = {k: torch.stack([p[k] for p, _ in named]) for k in names}
        bufs = {k: torch.stack([b[k] for _, b in named]) for k in buffers}
        return list(stacked(params, bufs, xb).unbind(0))  # (K, batch, ...) -> K outputs
    return forward


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


def _restore(state, m: Member, scaler, shuffle, device) -> int:
    """Load a checkpoint's state into the freshly built member; return its epoch."""
    try:
        m.model.load_state_dict(state["model"])
        m.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise TrainingError(f"the checkpoint does not fit this model/optimizer: "
                            f"{str(e).splitlines()[0]}") from e
    m.options["schedule"].load_state_dict(state["schedule"])
    if state["scaler"] is not None:
        scaler.load_state_dict(state["scaler"])
    es = m.option("early_stopping")
    if es is not None and state["early_stopping"] is not None:
        es.load_state_dict(state["early_stopping"])
    torch.set_rng_state(state["rng"]["torch"])
    shuffle.set_state(state["rng"]["shuffle"])
    if device.type == "cuda" and state["rng"]["cuda"] is not None:
        torch.cuda.set_rng_state(state["rng"]["cuda"], device)
    return state["epoch"]
