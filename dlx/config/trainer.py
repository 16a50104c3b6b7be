"""conf/trainer: how a run trains (dlx/training/). `auto` options are decided for the device and
model at run time (dlx/training/device.py) and tagged on the run."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from dlx.config.fields import SWITCHES, matches, off_or_positive, one_of, path, positive, seed
from dlx.config.regularizer import MODES, monitor

STRATEGIES = ("auto", "single", "ddp")  # auto: ddp under torchrun, else single
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # auto: bf16 on a CUDA device that has it, else fp32
REFITS = ("best", "all", "none")  # trainer.cv_refit
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


@dataclass
class TrainerConfig:
    epochs: int = positive(30)
    device: str = matches("auto", lambda v: bool(_DEVICE.match(str(v))),
                          "is not one of auto, cpu, cuda, cuda:N")
    seed: int = seed(42)  # weights init and batch order
    monitor: str = monitor("val_loss")  # picks the best epoch (best.pt) and the best run of a sweep
    monitor_mode: str = one_of("min", *MODES)
    progress: bool = True  # a progress bar per epoch on a terminal; false: plain epoch lines
    cv_folds: int = matches(0, lambda v: v == 0 or v >= 2,
                            "is not cross-validation: use 0 (off) or K >= 2 folds")  # K-fold on
    #   train+val; the objective is then the folds' mean
    cv_refit: str = one_of("best", *REFITS)  # after cross-validation, fit on all of train+val
    #   and test that model: best (a plain run; of a sweep its winner only), all, none (scores only)
    cv_workers: str = matches("auto", lambda v: str(v) == "auto" or (str(v).isdigit() and int(v) >= 1),
                              "is not auto or a number of worker processes >= 1")  # folds at once
    #   in CPU worker processes; auto: one per core on a CPU (docs/training.md#cross-validation)
    grad_clip: float = off_or_positive(0.0)  # max global gradient norm (clip_grad_norm_)
    precision: str = one_of("auto", *PRECISIONS)  # bf16: autocast; fp16: autocast + scaler (CUDA)
    compile: bool = False  # torch.compile the model for training (the first epoch pays the compile)
    deterministic: bool = False  # torch.use_deterministic_algorithms: repeatable on CUDA, slower
    checkpoint_every: int = off_or_positive(1)  # epochs between checkpoints in <run dir>/checkpoints
    resume: Optional[str] = path(None)  # continue a run: its run dir, a checkpoint file or its
    #   MLflow run id
    strategy: str = one_of("auto", *STRATEGIES)  # ddp: torch DDP, started by torchrun
    channels_last: str = one_of("auto", *SWITCHES)  # auto: on for conv nets
    capture: str = one_of("auto", *SWITCHES)  # CUDA graphs (torch.compile reduce-overhead); auto:
    #   long CUDA runs


OPTIONS = {"default": TrainerConfig}
