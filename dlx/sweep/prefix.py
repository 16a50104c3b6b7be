"""Shared epoch prefixes: sweep points that differ only in trainer.epochs are one training.

The 30-epoch point passes through the states of the 10- and 20-epoch points, so dlx's launcher
(dlx/sweep/launcher.py) trains only the longest point of such a group, with the shorter points
as milestones: at epoch 10 the 10-epoch point gets what a separate run of it records (its own
MLflow child run and output dir, params, per-epoch metrics up to its epoch, checkpoints, test
metrics, report and model), taken from a copy of the model under torch.random.fork_rng, so the
epochs after it train exactly as if nothing had happened. Its Hydra job then finds the result
(`result_for`) instead of training again.

It is exact only when nothing reads the total epoch count: not with a schedule whose shape
depends on trainer.epochs (cosine, onecycle), nor where `trainer.capture=auto` decides from the
run's length (CUDA). Early stopping decides from past epochs only: a point it stops before its
milestone ends where the shared training ended, as a separate run would.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

EPOCHS = "trainer.epochs="


@dataclass
class Point:
    """One job of a sweep: its composed config (with Hydra's node) and where its files go."""

    idx: int
    overrides: list[str]
    config: DictConfig
    output_dir: Path
    recorder: Any = None
    checkpoints: Any = None
    extra: dict = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        return int(self.config.trainer.epochs)

    def runtime(self, started: float):
        from dlx.runtime import Runtime

        return dataclasses.replace(Runtime.of(self.config.hydra, self.output_dir), started=started)

    @property
    def cfg(self) -> DictConfig:
        """The task's config, as Hydra hands it to the job: without the hydra node."""
        from omegaconf import open_dict

        task = copy.deepcopy(self.config)
        with open_dict(task):
            del task["hydra"]
        return task


def unshareable(config: DictConfig) -> str | None:
    """Why the points of this sweep cannot share epoch prefixes, or None when they can."""
    from dlx.config.validate import schema_of

    scheduler = schema_of(config.get("scheduler"))
    if scheduler is not None and scheduler.READS_EPOCHS:
        return f"scheduler={config.scheduler.name} reads trainer.epochs (its lr depends on the length)"
    if config.trainer.cv_folds > 1:
        return "trainer.cv_folds trains folds, each one from the start"
    if config.trainer.resume:
        return "trainer.resume continues one run"
    if str(config.trainer.capture).lower() == "auto" and config.trainer.device != "cpu":
        import torch

        if torch.cuda.is_available():
            return "trainer.capture=auto decides from a run's length on CUDA (set it true or false)"
    return None


def groups(points: list[Point], enabled: bool) -> tuple[list[list[Point]], str | None]:
    """The points grouped by everything but trainer.epochs, shortest first, and why points that
    differ only in trainer.epochs were not grouped (None when they were, or there were none)."""
    by_rest: dict[tuple, list[Point]] = {}
    for p in points:
        rest = tuple(o for o in p.overrides if not o.lstrip("+").startswith(EPOCHS))
        by_rest.setdefault(rest, []).append(p)
    alone = [[p] for p in points]
    several = [g for g in by_rest.values() if len({p.epochs for p in g}) > 1]
    if not several:
        return alone, None
    if not enabled:
        return alone, "epoch prefixes are not shared: hydra.launcher.share_prefixes=false"
    why = unshareable(points[0].config)
    if why:
        return alone, f"epoch prefixes are not shared: {why}"
    out = []
    for g in by_rest.values():
        g = sorted(g, key=lambda p: p.epochs)
        if len({p.epochs for p in g}) < len(g):  # a repeated point: each trains on its own
            out += [[p] for p in g]
        else:
            out.append(g)
    return out, None


# ------------------------------------------------------------------- the launcher <-> train()
_ACTIVE: list[Point] = []  # the shorter points of the training under way
_RESULTS: dict[str, Any] = {}  # output dir -> what train() returns for it (or the error it met)


@contextlib.contextmanager
def sharing(shorter: list[Point]):
    """While the longest point of a group trains, the shorter ones are its milestones."""
    global _ACTIVE
    _ACTIVE = list(shorter)
    try:
        yield
    finally:
        _ACTIVE = []


def store(output_dir: Path, result) -> None:
    """A point's Result fields (or the error it met), computed in another point's training."""
    _RESULTS[str(Path(output_dir).resolve())] = result


def result_for(output_dir: Path) -> dict | None:
    """A point whose training was shared: the Result fields of its milestone (or the error the
    shared training met before reaching it, raised again)."""
    found = _RESULTS.pop(str(Path(output_dir).resolve()), None)
    if isinstance(found, BaseException):
        raise found
    return found


def milestones(cfg, data, options: dict, identity: dict, recorder):
    """The fit callback for the shorter points of this training, or None when there are none."""
    return Milestones(_ACTIVE, cfg, data, options, identity, recorder) if _ACTIVE else None


# ------------------------------------------------------------------------------ the milestones
class Milestones:
    """Finishes each shorter point at its epoch, as a separate run of it would end."""

    def __init__(self, points, cfg, data, options, identity, recorder):
        from dlx.tracking.recorder import Recorder
        from dlx.training import checkpoint

        self.cfg, self.data, self.options, self.main = cfg, data, options, recorder
        self.pending = sorted(points, key=lambda p: p.epochs)
        every = cfg.trainer.checkpoint_every
        for p in self.pending:
            p.recorder = Recorder(p.cfg, p.runtime(recorder.started), recorder.main)
            p.recorder.start(data, options, None, True)  # the longer point read it
            meta = p.recorder.checkpoint_meta(identity, " ".join(p.config.hydra.overrides.task))
            if every > 0 and recorder.main:
                p.checkpoints = checkpoint.Checkpointer(p.output_dir / checkpoint.DIR, every, meta)
        self.loop = None

    # a fit callback (duck-typed: dlx.training.callbacks.Callback)
    def on_fit_start(self, loop) -> None:
        self.loop = loop

    def on_epoch_start(self, epoch, epochs, steps) -> None: ...

    def on_batch_end(self, step) -> None: ...

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        es = self.loop.early_stopping
        for p in list(self.pending):
            p.recorder.on_epoch_end(epoch, metrics)
            if p.checkpoints:  # what its own run would write this epoch
                p.checkpoints(self.loop.state, epoch, best=bool(es and es.best_epoch == epoch),
                              final=epoch == p.epochs or self.loop.stopping)
            if epoch == p.epochs:
                self._finish(p, self._copy())

    def _copy(self):
        """The model as a run that ends now ends: a copy, with early stopping's best weights
        when it restores them (the training goes on with the weights it has)."""
        model, es = copy.deepcopy(self.loop.model), self.loop.early_stopping
        if es is not None and es.restore_best and es.best_state is not None:
            model.load_state_dict(es.best_state)
        return model

    def _finish(self, p: Point, model, history=None) -> None:
        import torch

        from dlx.training import evaluation
        from dlx.training.fit import History

        self.pending.remove(p)
        source, es = history or self.loop.history, self.loop.early_stopping
        h = History(source)
        h.best_epoch = es.best_epoch if es else None
        restored = es.best_epoch if es is not None and es.restore_best and es.best_state else None
        h.final_epoch, h.seconds = restored or len(h), source.seconds
        h.stopped_epoch = source.stopped_epoch
        cuda = [self.data.test[0].device] if self.data.test[0].device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=cuda):  # the epochs after it draw what they would
                scores = evaluation.score(model, self.data.test, self.data.spec.task,
                                          self.cfg.dataset.batch_size, self.data.transform)
            p.recorder.tags({"dlx.shared_training": self.main.run_id or ""})
            p.recorder.finish(h, scores, self.data, model, self.options)
            p.recorder.end("FINISHED")
        except BaseException:
            p.recorder.end("FAILED")
            raise
        monitor = self.cfg.trainer.monitor
        _RESULTS[str(p.output_dir.resolve())] = {
            "objective": h.final.get(monitor), "test": scores.metrics, "epochs": len(h),
            "output_dir": str(p.output_dir), "run_id": p.recorder.run_id, "run_name": p.recorder.name,
            "link": p.recorder.link}

    def finish_rest(self, history, model) -> None:
        """Training ended before some milestones (early stopping): those points end here too,
        with the model as the training ended, as their own runs would have."""
        self.main.tags({"dlx.shared_training": self.main.run_id or ""})
        for p in list(self.pending):
            self._finish(p, model, history)

    def end(self, status: str, error: BaseException | None = None) -> None:
        """The shared training failed or was stopped: its unfinished points end with it."""
        for p in self.pending:
            p.recorder.end(status)
            if error is not None:
                _RESULTS[str(p.output_dir.resolve())] = error
        self.pending = []
