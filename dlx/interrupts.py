"""Ctrl-C and SIGTERM end a run KILLED, and never in the middle of a write.

`install()` makes both signals raise KeyboardInterrupt, as Ctrl-C does, except inside a
`deferred()` block (a checkpoint being written, a message to the tracking writer): there the
signal is noted and raised when the block ends, so a file or a message is never cut in half and
the interrupt always surfaces as KeyboardInterrupt, at a point the run can end cleanly from.
`installed()` does the same for one block (the Python API), the handlers before it put back.
"""

from __future__ import annotations

import contextlib
import signal
import threading


SAID = "interrupted; the run was marked KILLED"  # dlx's line when Ctrl-C or SIGTERM ended a run


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM ended a run or sweep of the Python API; every run it reached ended
    KILLED. A KeyboardInterrupt: `except Exception` does not swallow it."""

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


@contextlib.contextmanager
def installed():
    """`install()` for the length of a block, then the handlers that were there before it.
    Outside the main thread (where signals cannot be handled) it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    install()
    try:
        yield
    finally:
        for signum, handler in zip((signal.SIGINT, signal.SIGTERM), before):
            if handler is not None:  # (None: a handler not set from Python, left as it is)
                signal.signal(signum, handler)
