"""trainer.device -> torch.device. Asking for CUDA where there is none is an error, not a fallback."""

from __future__ import annotations

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
