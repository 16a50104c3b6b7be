"""What the fit loop tells the outside world (no torch import: the CLI's progress bar and the
tracking recorder implement it)."""

from __future__ import annotations

from collections.abc import Callable


class Callback:
    """The CLI draws progress, the recorder logs metrics. `on_epoch_end` returning True stops
    training after that epoch (a pruned sweep trial). `on_fit_start` hands over the loop's
    state (dlx/training/fit.py Loop) to a callback that needs more than the metrics (a sweep's
    epoch milestones checkpoint and test the model on the way). `end_tags` is what the callback
    adds to its run's record once training has ended (a pruned trial: dlx.pruned)."""

    def on_fit_start(self, loop) -> None: ...
    def on_epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...
    def on_batch_end(self, step: int) -> None: ...
    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> bool | None: ...

    def end_tags(self) -> dict[str, str]:
        return {}


def epoch_line(epoch: int, metrics: dict[str, float]) -> str:
    """`epoch 3: train_loss=0.1234  val_loss=...`: how an epoch is shown, wherever it is shown."""
    return f"epoch {epoch}: " + "  ".join(f"{k}={v:.4g}" for k, v in metrics.items())


class Lines(Callback):
    """Each epoch as one line, handed to `say` (the CLI's plain output; the Python API's
    `progress=` argument)."""

    def __init__(self, say: Callable[[str], None]):
        self.say = say

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.say(epoch_line(epoch, metrics))
