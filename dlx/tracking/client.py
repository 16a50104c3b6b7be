"""The training process's handle on the tracking writer (dlx/tracking/writer.py). No mlflow here.

A run's MLflow work (importing mlflow, opening the store, creating the run, params, metrics,
artifacts, reports and figures) happens in a process of its own, so it runs on another core
while this one imports torch and trains, the way W&B's service process does. Messages go down
the writer's stdin as length-prefixed pickles, in order; the writer answers on its stdout the
ones that ask for an answer, and every failure. `drain()` waits until everything sent so far is
in the store: dlx drains before it exits, so nothing is lost.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from dlx import interrupts
from dlx.errors import DlxError
from dlx.tracking.messages import Drain, Message, Open

_HEADER = struct.Struct(">Q")
DRAIN_AFTER_INTERRUPT = 30  # seconds dlx waits for the writer after Ctrl-C (it then goes on alone)


def write_frame(stream, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


class FrameReader:
    """Length-prefixed pickles from a file descriptor; knows whether more are waiting."""

    def __init__(self, fd: int):
        self.fd, self.buf = fd, bytearray()

    def _fill(self, n: int) -> bool:
        while len(self.buf) < n:
            chunk = os.read(self.fd, max(1 << 16, n - len(self.buf)))
            if not chunk:
                return False
            self.buf += chunk
        return True

    def read(self) -> Any:
        """The next message, or None at the end of the stream."""
        if not self._fill(_HEADER.size):
            return None
        (size,) = _HEADER.unpack(self.buf[: _HEADER.size])
        if not self._fill(_HEADER.size + size):
            return None
        data = bytes(self.buf[_HEADER.size : _HEADER.size + size])
        del self.buf[: _HEADER.size + size]
        return pickle.loads(data)

    def pending(self) -> bool:
        """Whether a message (or part of one) is waiting, without blocking."""
        return bool(self.buf) or bool(select.select([self.fd], [], [], 0)[0])


class Reply:
    """The answer to one message, when it comes."""

    def __init__(self, writer: Writer, seq: int):
        self.writer, self.seq = writer, seq

    def result(self, timeout: float | None = None) -> Any:
        return self.writer._wait(self.seq, timeout)

    def ready(self) -> bool:
        """Whether the answer has come (or the writer has gone)."""
        with self.writer._cond:
            return self.seq in self.writer._answers or self.writer._ended


class Writer:
    """Starts `python -m dlx.tracking.writer` and sends it messages."""

    def __init__(self):
        debug = os.environ.get("DLX_DEBUG") == "1" or os.environ.get("HYDRA_FULL_ERROR") == "1"
        self.cwd = os.getcwd()  # where the writer runs: what relative paths there mean
        self.proc = _spawn(debug)
        self._seq = itertools.count(1)
        self._cond = threading.Condition()
        self._answers: dict[int, tuple[bool, Any]] = {}
        self._errors: list[str] = []
        self._raised: set[str] = set()  # one failure is one line, however many messages it failed
        self._ended = False
        self.opened = False  # asked to open the store (the CLI does so ahead of the run)
        self.used = False  # a message other than `open` was sent: there are records to finish
        threading.Thread(target=self._read, name="dlx-tracking-replies", daemon=True).start()

    # -- sending
    def send(self, message: Message, reply: bool = False) -> Reply:
        """Queue `message` (one of dlx.tracking.messages') in the writer; with reply=True its
        answer can be awaited."""
        if not isinstance(message, Message):
            raise TypeError(f"the tracking writer takes dlx.tracking.messages, not {message!r}")
        seq = next(self._seq)
        if isinstance(message, Open):
            self.opened = True
        else:
            self.used = True
        try:
            with interrupts.deferred():  # a signal never cuts a message in half
                write_frame(self.proc.stdin, (seq, message, reply))
        except (BrokenPipeError, OSError, ValueError) as e:
            raise DlxError(self._gone()) from e
        return Reply(self, seq)

    def call(self, message: Message, timeout: float | None = None) -> Any:
        """Send and wait for the answer."""
        return self.send(message, reply=True).result(timeout)

    # -- answers
    def _read(self) -> None:
        reader = FrameReader(self.proc.stdout.fileno())
        while (message := reader.read()) is not None:
            seq, ok, value = message
            with self._cond:
                self._answers[seq] = (ok, value)
                if not ok:
                    self._errors.append(value)
                self._cond.notify_all()
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def _wait(self, seq: int, timeout: float | None) -> Any:
        with self._cond:
            if not self._cond.wait_for(lambda: seq in self._answers or self._ended, timeout):
                raise DlxError(f"the tracking writer did not answer within {timeout:g} s")
            if seq not in self._answers:
                raise DlxError(self._gone())
            ok, value = self._answers.pop(seq)
            if not ok:  # raised here: not again by check()
                self._errors.clear()
                self._raised.add(value)
        if not ok:
            raise DlxError(value)
        return value

    def check(self) -> None:
        """Raise the first failure the writer reported (once), without waiting."""
        with self._cond:
            fresh = [e for e in self._errors if e not in self._raised]
            self._errors.clear()
            if not fresh:
                return
            self._raised.add(fresh[0])
        raise DlxError(fresh[0])

    def _gone(self) -> str:
        return (f"the tracking writer stopped unexpectedly (exit {self.proc.poll()}): run with "
                "DLX_DEBUG=1 to see its output")

    # -- ending
    def drain(self, timeout: float | None = None) -> None:
        """Wait until the writer has done everything sent so far; raise what failed."""
        self.call(Drain(), timeout=timeout)
        self.check()

    def close(self, timeout: float | None = None) -> None:
        """No more messages: the writer finishes what it has and exits. It goes on in the
        background if it needs longer than `timeout` (it ignores Ctrl-C and SIGTERM)."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def discard(self) -> None:
        """Stop a writer that was started in advance but is not needed (tracking disabled)."""
        self.proc.kill()
        self.proc.wait()


def popen(show_stderr: bool):
    """How the writer starts by default: `python -m dlx.tracking.writer` with pipes for its stdin
    and stdout, its stderr shown only when asked (DLX_DEBUG=1)."""
    return subprocess.Popen([sys.executable, "-m", "dlx.tracking.writer"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE,
                            stderr=None if show_stderr else subprocess.DEVNULL)


_spawn: Callable[[bool], Any] = popen


def set_spawner(spawn: Callable[[bool], Any]) -> Callable[[bool], Any]:
    """Choose how this process starts its writer (an embedding program or a test harness that
    forks it from a process with mlflow imported): `spawn(show_stderr)` returns what Popen
    returns, as far as the writer's handle uses it (stdin, stdout, poll, wait, kill). Returns
    the spawner it replaces."""
    global _spawn
    before, _spawn = _spawn, spawn
    return before


_writer: Writer | None = None


def writer() -> Writer:
    """This process's writer, started on first use (or in advance by `start()`)."""
    global _writer
    if _writer is None or _writer.proc.poll() is not None:
        _writer = Writer()
        atexit.register(_at_exit, _writer)
    return _writer


def start() -> None:
    """Start the writer now, so that mlflow imports while the caller imports torch. One that
    runs in another working directory than the caller's now (a notebook that changed folder
    between two dlx.train calls) is finished first: a new store's default artifact folder,
    ./mlruns, is the writer's."""
    if running() and _writer.cwd != os.getcwd():
        shutdown()
    writer()


def running() -> bool:
    return _writer is not None and _writer.proc.poll() is None


def shutdown(timeout: float | None = None) -> None:
    """Drain and close this process's writer, if it has one (`dlx train` at its end, and a
    launcher's worker after each job)."""
    global _writer
    if _writer is None:
        return
    w, _writer = _writer, None
    if not w.used:  # started in advance, no record asked for (tracking off, --cfg, a failure)
        if w.opened:  # it finishes creating the store on its own: nothing waits on that
            w.close(timeout=0)
        else:
            w.discard()
        return
    try:
        if w.proc.poll() is None:
            w.drain(timeout)
    finally:
        w.close(timeout)


def drain(timeout: float | None = None) -> None:
    """Wait until this process's writer has done everything sent so far (a launcher's worker
    process after each job: the sweep reads the records next; the Python API after each call);
    it stays up for what comes next."""
    if running() and _writer.used:
        _writer.drain(timeout)


def discard() -> None:
    global _writer
    if _writer is not None:
        _writer.discard()
        _writer = None


def _at_exit(w: Writer) -> None:
    """An embedding program that never called shutdown(): finish the writer's work anyway."""
    if w.proc.poll() is None:
        w.close()
