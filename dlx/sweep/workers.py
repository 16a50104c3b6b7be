"""The fold workers: processes that train cross-validation folds at once (trainer.cv_workers > 1,
dlx/sweep/cv.py submits the folds). Whoever trains owns them: a sweep's session keeps them for its
next groups and stops them when the sweep ends; a lone cross-validated run stops them when it
ends. No torch import here (a session holds one before torch is imported)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from dlx.errors import DlxError, TrainingError


class Workers:
    """Fold worker processes, started on demand and kept until `stop`."""

    def __init__(self):
        self.pool: ProcessPoolExecutor | None = None
        self.size = 0

    def start(self, n: int) -> None:
        """n processes (none for n <= 1), started now so that their imports (torch, dlx) overlap
        what the training process does before its folds (starting the group's runs)."""
        if n <= 1 or (self.pool is not None and self.size == n):
            return
        self.stop()
        threads = max(1, (os.cpu_count() or 1) // n)  # the cores shared, not oversubscribed
        self.pool = ProcessPoolExecutor(n, mp_context=mp.get_context("spawn"),
                                        initializer=_worker_init, initargs=(threads,))
        self.size = n
        for _ in range(n):  # one process is spawned per task while none is idle
            self.pool.submit(int)

    def outcome(self, future):
        """A submitted fold's scores, or the DlxError that ended it."""
        try:
            return future.result()
        except DlxError as e:  # the fold's own failure (a non-finite loss, ...)
            return e
        except BrokenProcessPool as e:
            self.pool = None
            raise TrainingError(f"a cross-validation worker process died ({e}): rerun with "
                                "trainer.cv_workers=1 to train the folds in this process") from None

    def stop(self, now: bool = False) -> None:
        """Idle workers exit when told to; `now` (an interrupt) terminates them mid-fold."""
        pool, self.pool = self.pool, None
        if pool is None:
            return
        if not now:
            pool.shutdown(wait=True)
            return
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            p.terminate()


def _worker_init(threads: int) -> None:
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the training process's to handle
    torch.set_num_threads(threads)
    parent = os.getppid()

    def orphaned() -> None:  # the training process died (SIGKILL): so does its worker
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=orphaned, daemon=True).start()
