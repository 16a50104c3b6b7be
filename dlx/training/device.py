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
# precision=auto on a CPU with native bf16: autocast pays from about this much forward work per
# optimizer step (measured on AVX-512 BF16: the conv presets gain, the digits CNN at 22 MFLOP and
# small MLPs and autoencoders do not; docs/performance.md#precision-and-threads-on-a-cpu)
CPU_BF16_MIN_FLOPS = 50e6
# ... and never for these layers, which measured no faster in bf16 on such a CPU (RNN, GRU,
# attention at 10 and 200 tokens; LSTM x2.3 at 200 tokens but x1.0 at 10: opt in with bf16)
CPU_BF16_NO = (torch.nn.RNNBase, torch.nn.MultiheadAttention)
# threads on a CPU: a network under this much forward work per batch trains on one thread. Its
# ops are too small to share out, and with more threads each op's parallel region waits for a
# core that the tracking writer, a sampler or any other process may hold (the measurements:
# docs/performance.md#precision-and-threads-on-a-cpu)
CPU_THREADS_MIN_FLOPS = 25e6


def fast_paths(trainer, device: torch.device, model: torch.nn.Module, steps: int,
               example: torch.Tensor | None = None) -> dict:
    """trainer.precision / channels_last / capture, with `auto` decided for this device and model:

    - precision auto: bf16 autocast on a CUDA device that supports it; on a CPU with native bf16
      (AVX-512 BF16 or AMX) for a network without recurrent or attention layers whose forward
      pass over one batch (`example`) takes at least CPU_BF16_MIN_FLOPS; else fp32. Why is
      in `precision_why`, which the run tags;
    - channels_last auto: on for a model with 2-d convolutions (NHWC kernels: faster on GPUs, and
      x1.37 for the source CNN on a 2-core CPU in benchmarks/RESULTS.md);
    - capture auto: the training step compiled with CUDA graphs (torch.compile
      mode="reduce-overhead") on CUDA for runs of at least CAPTURE_MIN_STEPS optimizer steps,
      when not deterministic. Small models are launch-bound on a GPU; a graph replays the step;
    - threads (CPU): one for a network under CPU_THREADS_MIN_FLOPS per batch, else the process's.
    An explicit true/fp16/... that cannot work here is a ConfigError, never a silent fallback."""
    cuda = device.type == "cuda"
    flops = None if cuda or example is None else forward_flops(model, example)
    precision, why = auto_precision(trainer.precision, device, model, flops)
    conv = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    channels_last = _switch(trainer.channels_last, conv)
    capture = _switch(trainer.capture, cuda and steps >= CAPTURE_MIN_STEPS and not trainer.deterministic)
    if capture and not cuda:
        raise ConfigError(f"trainer.capture=true records CUDA graphs, and this run is on {device}: "
                          "use trainer.capture=auto (or trainer.compile=true to compile on a CPU)")
    threads = None  # CUDA: as set
    if not cuda:  # a small network on one thread (the process's threads otherwise)
        threads = torch.get_num_threads() if (flops or 0) >= CPU_THREADS_MIN_FLOPS else 1
    return {"precision": precision, "precision_why": why, "channels_last": channels_last,
            "capture": capture, "threads": threads}


def auto_precision(setting: str, device: torch.device, model: torch.nn.Module,
                   flops: float | None) -> tuple[str, str]:
    """(the precision a run trains in, why): trainer.precision, or what `auto` picks for a network
    of `flops` forward work per batch."""
    if setting != "auto":
        return setting, f"trainer.precision={setting}"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", "auto: bf16 autocast on a CUDA device that supports it"
        return "fp32", "auto: fp32 (this CUDA device has no bf16)"
    if not native_bf16():
        return "fp32", "auto: fp32 (this CPU has no native bf16: neither AVX-512 BF16 nor AMX)"
    slow = sorted({type(m).__name__ for m in model.modules() if isinstance(m, CPU_BF16_NO)})
    if slow:
        return "fp32", (f"auto: fp32 ({', '.join(slow)} layers are no faster in bf16 on a CPU; "
                        "trainer.precision=bf16 to try)")
    if flops is None:
        return "fp32", "auto: fp32 (no batch to size the network's work by)"
    if flops < CPU_BF16_MIN_FLOPS:
        return "fp32", (f"auto: fp32 ({flops / 1e6:.0f} MFLOP per batch, under the "
                        f"{CPU_BF16_MIN_FLOPS / 1e6:.0f} from which bf16 pays on a CPU)")
    return "bf16", (f"auto: bf16 autocast (this CPU has native bf16; {flops / 1e6:.0f} MFLOP per "
                    f"batch, at least the {CPU_BF16_MIN_FLOPS / 1e6:.0f} from which it pays)")


def native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX-512 BF16 or AMX tiles)."""
    cpu = torch.cpu
    return any(getattr(cpu, name, lambda: False)()
               for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def forward_flops(model: torch.nn.Module, batch: torch.Tensor) -> float:
    """The multiply-adds (x2) of the network's linear and convolution layers over `batch`,
    counted from the output sizes of a forward pass over its first row, times the batch size.
    The pass runs in eval mode, without gradients and under fork_rng: it changes nothing."""
    macs = 0

    def count(module, inputs, output) -> None:
        nonlocal macs
        if isinstance(module, torch.nn.Linear):
            macs += output.numel() * module.in_features
        elif isinstance(module, torch.nn.modules.conv._ConvNd):
            w = module.weight
            macs += output.numel() * w.shape[1] * w[0, 0].numel()

    hooks = [m.register_forward_hook(count) for m in model.modules()
             if isinstance(m, (torch.nn.Linear, torch.nn.modules.conv._ConvNd))]
    training = model.training
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            model.eval()
            model(batch[:1])
    except Exception:  # noqa: BLE001 - a network that cannot take one row: training will say why
        macs = 0
    finally:
        model.train(training)
        for h in hooks:
            h.remove()
    return 2.0 * macs * len(batch)


def _switch(value, auto: bool) -> bool:
    """A trainer on/off option: true | false | auto (then `auto`)."""
    value = str(value).lower()
    return auto if value == "auto" else value == "true"
