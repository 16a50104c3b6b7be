"""Group training: the points that share one training (dlx/sweep/sharing.py decides which), each
ending as its own run would, built from the one-run recipe's steps (dlx/run.py):

- shared epochs: points that differ only in trainer.epochs are one network trained to the
  longest; each shorter point records the epochs up to its own and ends there, from a copy
  (a milestone, dlx/sweep/milestones.py), tagged with the run that trained (dlx.shared_training);
- stacked lrs: points that differ only in optimizer.lr are one network each (a `fit.Member`),
  trained one after the other from the same start, or as K stacked copies in the one fit loop
  when `fuse` says so (dlx/sweep/fused.py; tag dlx.fused_with);
- cross-validation (trainer.cv_folds): each network's folds (dlx/sweep/cv.py), every point scored
  at its own epoch; trainer.cv_refit says which points are then trained on all of train+val
  (a plain run's, `all`; a sweep's winner is refit by its session, dlx/sweep/session.py).

A point alone that is not cross-validated is `dlx.run.train` itself. Every point is its own
MLflow run and Result.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from dlx import models, run
from dlx.errors import ConfigError
from dlx.runtime import Point, Result
from dlx.sweep import cv, fused, optuna_study
from dlx.sweep.workers import Workers
from dlx.sweep.milestones import Milestones
from dlx.tracking.recorder import SCORES_ONLY, Recorder
from dlx.training import checkpoint
from dlx.training import cv as folds
from dlx.training import device as devices
from dlx.training.callbacks import Callback
from dlx.training.fit import History, Member
from dlx.training.fit import train as fit


def train_group(points: list[Point], callbacks: list[Callback] = (), fuse: str = "auto",
                workers: Workers | None = None) -> list[Result | BaseException]:
    """Train points that differ at most in trainer.epochs and optimizer.lr (cross-validated, also
    dataset.batch_size) as one training: each point's Result, or the error that ended it, in
    order. `callbacks` (the CLI's progress) follow the first network. `fuse`: auto | true |
    false, whether lr points train stacked. `workers`: the fold workers to use and keep (a
    sweep's); without them, cross-validation starts its own and stops them at the end."""
    cfg, runtime = points[0].cfg, points[0].runtime
    if len(points) == 1 and (cfg.trainer.cv_folds <= 1 or runtime.refit):  # the one-run recipe
        try:
            return [run.train(cfg, runtime, [*callbacks, *_pruning(points[0])])]
        except Exception as e:  # noqa: BLE001 - the point's outcome
            return [e]
    device, group = run.where(cfg, runtime)
    if group is not None:  # torchrun with trainer.strategy=auto: DDP trains one fit
        group.close()
        raise ConfigError("trainer.strategy=ddp trains one fit, not a cross-validation or a "
                          "group of sweep points: run it in one process (trainer.strategy=single)")
    runs = [_Run(p, Recorder(p.cfg, p.runtime)) for p in points]
    own = workers is None
    workers = Workers() if own else workers
    try:
        _train(runs, list(callbacks), device, fuse, workers)
    except Exception as e:  # noqa: BLE001 - every point it reached first fails with it
        for r in runs:
            if r.result is None:
                r.result = e
    finally:
        if own:
            workers.stop()
    return [r.result for r in runs]


@dataclass
class _Run:
    """A point while it trains: its record, its checkpoints, and in the end its Result (or error)."""

    point: Point
    recorder: Recorder
    checkpoints: checkpoint.Checkpointer | None = None
    objective: float | None = None  # cross-validated: the folds' mean (else the final val metric)
    result: Result | BaseException | None = None

    @property
    def cfg(self) -> DictConfig:
        return self.point.cfg


def _train(runs: list[_Run], callbacks: list, device, fuse: str, workers: Workers) -> None:
    cfg = runs[0].cfg
    cross_validated = cfg.trainer.cv_folds > 1
    # -- data and model: every network of the group starts from these weights
    data, cached = run.load(cfg, runs[0].point.runtime)
    model, data = run.build(cfg, data, device)
    ident = run.identity(cfg, data)
    rng = _rng_state(device)  # what each network's training starts from, as in its own run
    members = _members(runs, model, data)

    # -- record: from here on every run ends FINISHED, FAILED or KILLED, never RUNNING
    with run.recorded([r.recorder for r in runs]):
        n_workers = _cv_workers(runs, members, device) if cross_validated else 1
        workers.start(n_workers)  # their imports overlap the runs' starts
        trains = members[0][1][-1]  # the run of the first network's training (its longest point)
        for member, share in members:
            for r in share:
                r.recorder.start(data, member.options, None, cached or r is not runs[0],
                                 trains=r is trains)
                r.checkpoints = run.checkpointer(r.recorder, ident, None,
                                                 r.point.runtime.output_dir / checkpoint.DIR)
        if cross_validated:  # K-fold on train+val, then the refits
            fits = _cross_validate(runs, members, data, device, callbacks,
                                   getattr(model, "reconstructs", False),
                                   workers if n_workers > 1 else None)
            if not fits:  # scores only (trainer.cv_refit=none, or best in a sweep: not yet)
                return
            data = folds.refit_data(data)  # the refits train on all of train+val
            torch.manual_seed(cfg.trainer.seed)
            rng = _rng_state(device)
            members = _members(fits, models.build(cfg.model, data.spec).to(device), data)
            for r in fits:
                r.recorder.data(data)  # the refit's preprocessing (fitted on train+val) is its model's

        # -- fit: each network with its longest point's recorder and checkpoints, its shorter
        #    points as milestones
        on_device = data.to(device)
        for member, share in members:
            longest = share[-1]
            member.checkpoints = longest.checkpoints
            member.callbacks = [*callbacks, longest.recorder, *_pruning(longest.point)]
            if len(share) > 1:
                member.callbacks.append(_Shorter(share[:-1], longest, on_device, member.options))
        nets, epochs = [m for m, _ in members], {s[-1].point.epochs for _, s in members}
        batches = {s[-1].cfg.dataset.batch_size for _, s in members}
        example = on_device.batch(on_device.train[0][:2], False)
        stacked = len(nets) > 1 and len(epochs) == 1 and len(batches) == 1 and \
            fused.check(fuse, model, nets[0].options, example)
        if stacked:  # the lr points as K stacked copies in the one loop
            for m in nets:
                for cb in m.callbacks:
                    if isinstance(cb, _Shorter):
                        cb.extra["dlx.fused_with"] = str(len(nets))
            for m in nets[1:]:  # the progress follows the first network only
                m.callbacks = [cb for cb in m.callbacks if cb not in callbacks]
            fit(nets, on_device, epochs.pop(), cfg.dataset.batch_size, cfg.trainer.seed)
        else:  # one network after the other, each from the state its own run starts from
            for member, share in members:
                _set_rng_state(rng, device)
                last = share[-1]
                fit([member], on_device, last.point.epochs, last.cfg.dataset.batch_size,
                    cfg.trainer.seed)

        # -- test: the held-out split, once per point, with its final weights
        for member, share in members:
            if member.error is not None:  # a non-finite loss: its points not ended yet fail
                for r in share:
                    if r.result is None:
                        r.result = member.error
                        r.recorder.end("FAILED", member.error)
                continue
            tags = {"dlx.fused_with": str(len(nets))} if stacked else {}
            for cb in member.callbacks:
                if isinstance(cb, _Shorter):  # training ended before some (early stopping)
                    cb.finish_rest(member.model)
            tags.update(run.tags_of(member.callbacks))  # dlx.shared_training, dlx.pruned
            r = share[-1]
            r.result = run.finish(r.recorder, member.model, member.history, on_device,
                                  member.options, tags, r.objective)


def _cv_workers(runs: list[_Run], members, device) -> int:
    """How many worker processes train the group's folds (trainer.cv_workers)."""
    cfg = runs[0].cfg
    return devices.cv_workers(cfg.trainer.cv_workers, device, runs[0].point.runtime.n_jobs,
                              len(members) * cfg.trainer.cv_folds)


def _cross_validate(runs: list[_Run], members, data, device, callbacks, reconstructs: bool,
                    workers: Workers | None) -> list[_Run]:
    """Each network's folds, each point scored at its own epoch (its fold_ metrics, cv_mean_/
    cv_std_ and cv_folds.json): the points that trainer.cv_refit refits now, the others ended.
    cv_refit=best refits a plain run, and of a sweep only its winner, once all points are scored
    (by the sweep's session)."""
    cfg = runs[0].cfg
    networks = [(share[-1].cfg, [r.point.epochs for r in share]) for _, share in members]
    outcomes = cv.cross_validate(networks, data, device, run.fresh, callbacks, workers, reconstructs)
    fits = []
    for (_, share), outcome in zip(members, outcomes):
        for r in share:
            if isinstance(outcome, BaseException):
                r.result = outcome
                r.recorder.end("FAILED", outcome)
                continue
            summary = outcome[r.point.epochs]
            for i, scores in enumerate(summary["scores"], 1):
                r.recorder.fold(i, scores)
            r.recorder.cross_validation(summary)
            r.objective = summary["mean"][cfg.trainer.monitor]
            how = cfg.trainer.cv_refit
            if how == "all" or (how == "best" and not r.point.runtime.sweep):
                fits.append(r)
            else:  # scores only: no final model, no test metrics (yet, for a sweep's winner)
                r.recorder.tags({SCORES_ONLY: "true"})
                r.result = run.end(r.recorder, r.objective, {}, 0)
    return fits


def _members(runs: list[_Run], model, data) -> list[tuple[Member, list[_Run]]]:
    """One network per optimizer.lr (and batch size: a cross-validated group's), with its points
    shortest first (the longest trains, the others end at their epochs); every network starts
    from `model`'s weights."""
    by_lr: dict[tuple, list[_Run]] = {}
    for r in runs:
        by_lr.setdefault((float(r.cfg.optimizer.lr), r.cfg.dataset.batch_size), []).append(r)
    members = []
    for i, share in enumerate(by_lr.values()):
        share.sort(key=lambda r: r.point.epochs)
        net = model if i == 0 else copy.deepcopy(model)
        optimizer, options = run.fit_setup(share[-1].cfg, net, data)
        members.append((Member(net, optimizer, options), share))
    return members


def _pruning(point: Point) -> list[Callback]:
    """sweep=optuna: the trial's pruning callback (none for other points)."""
    found = optuna_study.pruning(point.runtime.trial, point.cfg.trainer.monitor)
    return [found] if found is not None else []


class _Shorter(Milestones):
    """A network's shorter points: each records the epochs up to its own (metrics, checkpoints,
    as its own run would), then ends at its epoch with the model and history a fit ending there
    returns, while the training goes on for the longest point."""

    def __init__(self, runs: list[_Run], training: _Run, data, options: dict):
        super().__init__([r.point.epochs for r in runs], self._ended)
        self.pending, self.training, self.data, self.options = list(runs), training, data, options
        self.extra: dict[str, str] = {}  # tags every point gets (stacked: dlx.fused_with)

    def end_tags(self) -> dict[str, str]:
        """The longest point's run: the one whose training produced every point of the network."""
        return {"dlx.shared_training": self.training.recorder.run_id or ""}

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        es = self.loop.early_stopping
        for r in self.pending:  # what its own run records this epoch
            r.recorder.on_epoch_end(epoch, metrics)
            if r.checkpoints:
                r.checkpoints(self.loop.state, epoch, best=bool(es and es.best_epoch == epoch),
                              final=epoch == r.point.epochs or self.loop.stopping)
        super().on_epoch_end(epoch, metrics)

    def finish_rest(self, model) -> None:
        """Training ended before some milestones (early stopping): those points end with the
        model as the training ended, as their own runs would have."""
        for r in list(self.pending):
            self._end(r, model, self.history())

    def _ended(self, epoch: int, model, history: History) -> None:
        for r in [r for r in self.pending if r.point.epochs == epoch]:
            self._end(r, model, history)

    def _end(self, r: _Run, model, history: History) -> None:
        self.pending.remove(r)
        r.result = run.finish(r.recorder, model, history, self.data, self.options,
                              {**self.extra, **self.end_tags()}, r.objective)


def _rng_state(device) -> tuple:
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_rng_state(state: tuple, device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)
