"""How this process was launched, from torchrun's environment (no torch import: the CLI and
config validation read it before torch is loaded)."""

from __future__ import annotations

import os


def world_size() -> int:
    """Processes training this run: torchrun's WORLD_SIZE (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched() -> bool:
    """True in a process started by torchrun with more than one rank."""
    return world_size() > 1


def rank() -> int:
    """This process's rank under torchrun (0 otherwise): only rank 0 prints and tracks."""
    return int(os.environ.get("RANK", "0")) if launched() else 0
