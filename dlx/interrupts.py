"""Ctrl-C and SIGTERM end a run KILLED, and never in the middle of a write.

`install()` makes both signals raise KeyboardInterrupt, as Ctrl-C does, except inside a
`deferred()` block (a checkpoint being written, a message to the tracking writer): there the
signal is noted and raised when the block ends, so a file or a message is never cut in half and
the interrupt always surfaces as KeyboardInterrupt, at a point the run can end cleanly from.
"""

from __future__ import annotations

import contextlib
import signal

_depth = 0  # nesting of deferred() blocks
_pending = False  # a signal arrived inside one


def _handler(signum, frame) -> None:
    global _pending
    if _depth:
        _pending = True
        return
    raise KeyboardInterrupt


def install() -> None:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt (even where a parent shell made us ignore
    SIGINT). Call from the main thread."""
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


@contextlib.contextmanager
def deferred():
    """A block that a signal does not interrupt; the interrupt comes when it ends."""
    global _depth, _pending
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending:
            _pending = False
            raise KeyboardInterrupt
