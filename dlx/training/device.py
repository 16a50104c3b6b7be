"""trainer.device -> torch.device (asking for CUDA where there is none is an error, not a
fallback), the process's set-up for a run, and the `auto` fast paths for the device."""

from __future__ import annotations

import os

import torch

from dlx.errors import ConfigError


def resolve(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.device={name} but this machine has no usable CUDA device "
                "(torch.cuda.is_available() is False): use trainer.device=cpu or auto"
            )
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"trainer.device={name} but only {torch.cuda.device_count()} CUDA device(s) exist: "
                f"use cuda:0..cuda:{torch.cuda.device_count() - 1}"
            )
    return torch.device(name)


def setup_process(trainer, device: torch.device, n_jobs: int | None) -> None:
    """Process-wide set-up before anything is built: threads shared with parallel sweep jobs,
    trainer.deterministic (deterministic kernels everywhere; an op without one raises), a check
    that trainer.precision fits the device, and the seed."""
    if n_jobs is not None and n_jobs != 1:  # parallel jobs share the cores, not each take all
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // n_jobs if n_jobs > 0 else 1))
    if trainer.precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"trainer.precision=fp16 needs a CUDA device (this run is on {device}): "
                          "use trainer.precision=bf16 or fp32")
    if trainer.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it, before init
        torch.backends.cudnn.benchmark = False
    if trainer.deterministic != torch.are_deterministic_algorithms_enabled():  # imports dynamo
        torch.use_deterministic_algorithms(trainer.deterministic)
    torch.manual_seed(trainer.seed)


def cv_workers(setting, device: torch.device, n_jobs: int | None, folds: int) -> int:
    """Processes that train cross-validation folds at once (trainer.cv_workers). auto: one per
    core on a CPU, as many as there are folds to train, unless the sweep's launcher already runs
    jobs in parallel; 1 on CUDA. Measured on a 2-core CPU (docs/training.md#cross-validation):
    two 1-thread workers train x2.0 the folds per second of one 2-thread process, since a small
    network's step does not spread over threads."""
    if str(setting) != "auto":
        if int(setting) > 1 and device.type != "cpu":
            raise ConfigError(f"trainer.cv_workers={setting} trains folds in CPU worker processes, "
                              f"and this run is on {device}: use trainer.cv_workers=auto or 1")
        return max(1, min(int(setting), folds))
    if device.type != "cpu" or (n_jobs is not None and n_jobs != 1):
        return 1
    return max(1, min(os.cpu_count() or 1, folds))


# ---------------------------------------------------------------------------- fast paths
CAPTURE_MIN_STEPS = 1000  # capture=auto: only runs this long repay the compile (~30-60 s)


def fast_paths(trainer, device: torch.device, model: torch.nn.Module, steps: int) -> dict:
    """trainer.precision / channels_last / capture, with `auto` decided for this device and model:

    - precision auto: bf16 autocast on a CUDA device that supports it, else fp32;
    - channels_last auto: on for a model with 2-d convolutions (NHWC kernels: faster on GPUs, and
      x1.37 for the source CNN on a 2-core CPU in benchmarks/RESULTS.md);
    - capture auto: the training step compiled with CUDA graphs (torch.compile
      mode="reduce-overhead") on CUDA for runs of at least CAPTURE_MIN_STEPS optimizer steps,
      when not deterministic. Small models are launch-bound on a GPU; a graph replays the step.
    An explicit true/fp16/... that cannot work here is a ConfigError, never a silent fallback."""
    cuda = device.type == "cuda"
    precision = trainer.precision
    if precision == "auto":
        precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
    conv = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    channels_last = _switch(trainer.channels_last, conv)
    capture = _switch(trainer.capture, cuda and steps >= CAPTURE_MIN_STEPS and not trainer.deterministic)
    if capture and not cuda:
        raise ConfigError(f"trainer.capture=true records CUDA graphs, and this run is on {device}: "
                          "use trainer.capture=auto (or trainer.compile=true to compile on a CPU)")
    return {"precision": precision, "channels_last": channels_last, "capture": capture}


def _switch(value, auto: bool) -> bool:
    """A trainer on/off option: true | false | auto (then `auto`)."""
    value = str(value).lower()
    return auto if value == "auto" else value == "true"
