"""Fused sweep points: points that differ only in optimizer.lr train as K stacked copies.

dlx's launchers hand such points to the group training (dlx/sweep/group.py) together; there each
point is a member of the one fit loop (dlx/training/fit.py), which runs the K copies' forward and backward
as one (torch.func: their parameters stacked, `functional_call` under `vmap`, dropout with
randomness="same" so each copy draws what its own run draws), over one batch stream; each copy
keeps its own module, optimizer (its lr), schedule, early stopping, checkpoints and MLflow run,
so it trains exactly as its separate run (in float64 they agree to ~1e-11: tests/). A copy that
diverges leaves the stack. Small networks are launch-bound on a GPU, where this pays; on a CPU
it does not (a measured probe here was 0.44-1.47x a loop), so `hydra.launcher.fuse=auto` fuses
only on CUDA and only when a short timing probe shows a gain; `true` fuses wherever it can
(tests), `false` never. Not for recurrent networks (no vmap batching rule) nor batch norm
(running statistics are updated in place).
"""

from __future__ import annotations

import time

import torch
from torch import nn

from dlx.errors import ConfigError
from dlx.training.fit import Member, train

Copy = Member  # one stacked point: a member of the one fit loop


def fit(copies: list[Member], data, epochs: int, batch_size: int, seed: int) -> None:
    """Train the copies (already on the data's device) stacked, each as it would train alone;
    a copy's failure is kept on it (copy.error), the others go on."""
    train(copies, data, epochs, batch_size, seed)


def unfusable(model: nn.Module) -> str | None:
    """Why this network cannot be stacked, or None."""
    if any(isinstance(m, nn.RNNBase) for m in model.modules()):
        return "recurrent layers have no vmap batching rule"
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return "batch norm updates its running statistics in place"
    return None


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
