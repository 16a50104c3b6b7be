"""What the fit loop tells the outside world (no torch import: the CLI's progress bar and the
tracking recorder implement it)."""

from __future__ import annotations


class Callback:
    """The CLI draws progress, the recorder logs metrics. `on_epoch_end` returning True stops
    training after that epoch (a pruned sweep trial). `on_fit_start` hands over the loop's
    state (dlx/training/fit.py Loop) to a callback that needs more than the metrics (a sweep's
    epoch milestones checkpoint and test the model on the way)."""

    def on_fit_start(self, loop) -> None: ...
    def on_epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...
    def on_batch_end(self, step: int) -> None: ...
    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> bool | None: ...
