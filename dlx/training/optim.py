"""conf/optimizer -> a torch.optim optimizer over the model's parameters.

torch.optim imports torch._dynamo (1.3-2.6 s) the first time an optimizer adds a parameter group
or takes a step, only to tell torch.compile not to trace those calls: `Optimizer.add_param_group`
is wrapped in torch._disable_dynamo and every `step` calls torch._dynamo.graph_break(), both
no-ops in eager mode. A run that compiles nothing (trainer.compile and trainer.capture off)
therefore gets a stand-in for torch._dynamo that answers exactly those two names and loads the
real module the moment anything else of it is used, so nothing changes for code that does use it.
"""

from __future__ import annotations

import importlib
import sys
import inspect
import types

import torch
from hydra.utils import instantiate

from dlx.config import targets


def build(cfg, params, compiled: bool, device: torch.device) -> torch.optim.Optimizer:
    """`cfg` is the optimizer node (`_target_: torch.optim.X`, `_partial_: true`); `params` the
    model's parameters, or the regularizers' parameter groups; `device` where they live.

    On a CPU the step is torch's fused kernel where the optimizer has one (Adam, AdamW, SGD,
    Adagrad: one C++ loop over all parameters, equal to the per-tensor loop torch picks by
    default up to float rounding; the digits CNN at batch 32 on one thread trains 1000 steps in
    2.7 s instead of 4.1 s), else its multi-tensor step (bit-identical to the per-tensor loop,
    3.8 s); on CUDA torch's own choice (the multi-tensor step)."""
    if not compiled:
        defer_dynamo()
    targets.resolve("optimizer", cfg["_target_"])  # the trust rule, for a run read back too
    make = instantiate(cfg, _partial_=True)  # the parameters are bound below
    accepts = inspect.signature(make.func).parameters
    params = list(params)
    if device.type == "cpu" and "fused" in accepts:
        try:
            return make(params=params, fused=True)
        except RuntimeError:  # no fused kernel for these parameters here
            pass
    return make(params=params, **({"foreach": True} if device.type == "cpu" and "foreach" in accepts else {}))


class _DeferredDynamo(types.ModuleType):
    """Stands in for torch._dynamo until something other than the eager no-ops is needed."""

    @staticmethod
    def graph_break(msg: str = "") -> None:  # torch.optim's step: a no-op outside torch.compile
        return None

    @staticmethod
    def disable(fn=None, recursive: bool = True, *, reason=None, wrapping: bool = True):
        return fn  # torch._disable_dynamo: "do not trace fn", moot when nothing is traced

    def __getattr__(self, name: str):
        real = _load_real()
        return getattr(real, name)


def _load_real() -> types.ModuleType:
    if isinstance(sys.modules.get("torch._dynamo"), _DeferredDynamo):
        del sys.modules["torch._dynamo"]
    return importlib.import_module("torch._dynamo")


def defer_dynamo() -> None:
    """Put the stand-in in place, unless torch._dynamo is loaded already."""
    if "torch._dynamo" not in sys.modules:
        sys.modules["torch._dynamo"] = _DeferredDynamo("torch._dynamo")


def undefer_dynamo() -> None:
    """The real torch._dynamo from now on (trainer.compile / capture)."""
    if isinstance(sys.modules.get("torch._dynamo"), _DeferredDynamo):
        _load_real()
