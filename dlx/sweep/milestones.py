"""Milestones: the shorter trainings inside a longer one. A training to 30 epochs passes through
the states that trainings to 10 and 20 epochs end in, so each of those ends on the way, from a
copy: the model and its history as a fit that ended at that epoch would return them (early
stopping's best weights when it restores them), while the training goes on untouched.

Exact only when nothing reads the total epoch count (no cosine or onecycle schedule): dlx's
launchers group points only then (dlx/sweep/sharing.py). Used for a group's points (each ends as
its own run, dlx/sweep/group.py) and for cross-validation folds (each fold scored at each point's
epoch, dlx/sweep/cv.py).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from dlx.training.callbacks import Callback
from dlx.training.fit import History


class Milestones(Callback):
    """At each epoch of `epochs` that the fit reaches, `at(epoch, model, history)` gets the model
    and history as a fit ending there would return them."""

    def __init__(self, epochs, at: Callable[[int, object, History], None]):
        self.epochs, self.at = set(epochs), at
        self.loop = None

    def on_fit_start(self, loop) -> None:
        self.loop = loop

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if epoch in self.epochs:
            self.at(epoch, self.model(), self.history())

    def model(self):
        """The model as a fit that ended now would return it; the training's own goes on."""
        es, model = self.loop.early_stopping, self.loop.model
        return es.copy_as_ended(model) if es else copy.deepcopy(model)

    def history(self) -> History:
        """The history as a fit that ended now would return it."""
        es, source = self.loop.early_stopping, self.loop.history
        h = History(source)
        h.best_epoch = es.best_epoch if es else None
        restored = es.best_epoch if es is not None and es.restore_best and es.best_state else None
        h.final_epoch, h.seconds, h.stopped_epoch = restored or len(h), source.seconds, source.stopped_epoch
        return h
