"""Files that survive a crash or a power loss: one rename, then the folder fsynced. Used by the
checkpoints (dlx/training/checkpoint.py) and the tracking spool (dlx/tracking/spool.py)."""

from __future__ import annotations

import os
from pathlib import Path


def replace(tmp: Path, path: Path) -> None:
    """Rename `tmp` (written and fsynced) over `path`, then fsync the folder so the rename
    survives a power loss: a reader finds the old content or the new, never a mix."""
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
