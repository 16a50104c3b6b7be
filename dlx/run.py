"""`train(cfg, runtime)`: one run, from composed config to MLflow record, read top to bottom:

    where -> data -> model -> optimizer -> record -> fit -> test -> record

`train_group(points)` is the same recipe for the points of a sweep that share one training
(dlx's launcher hands them over explicitly; a plain run is a group of one): points that differ
only in trainer.epochs are one network trained to the longest, each shorter point ending at its
epoch as its own run would (a milestone); points that differ only in optimizer.lr are one network
each (a `fit.Member`), stacked in the one fit loop when `fuse` says so (dlx/sweep/fused.py).
Every point is its own MLflow run and Result.

Plain functions: the CLI wraps them for Hydra; tests, benchmarks and launchers call the same
thing. A Result's objective is the monitored validation metric, what a sweeper optimizes. The
config has been validated (dlx/config/validate.py) by the caller; what a run records is the
recorder's business (dlx/tracking/recorder.py), done in the tracking writer's process.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from dlx import models
from dlx.config import check_monitor, task_of
from dlx.data import registry
from dlx.errors import ConfigError
from dlx.runtime import Point, Runtime
from dlx.sweep import fused, optuna_study
from dlx.tracking.recorder import SCORES_ONLY, Recorder
from dlx.training import checkpoint, cv, distributed, evaluation, optim, regularizers, schedulers
from dlx.training import device as devices
from dlx.training.callbacks import Callback
from dlx.training.fit import History, Member
from dlx.training.fit import train as fit_members
from dlx.training.metrics import steps_per_epoch


@dataclass
class Result:
    objective: float | None  # the monitored validation metric of the final model
    test: dict[str, float]  # test_<metric>
    epochs: int
    output_dir: str
    run_id: str | None = None  # None: tracking was off
    run_name: str | None = None
    link: str | None = None  # the run's page in MLflow's UI


def train(cfg: DictConfig, runtime: Runtime, callbacks: list[Callback] = ()) -> Result:
    """One run; its failure raised."""
    (result,) = train_group([Point(cfg, runtime)], callbacks)
    if isinstance(result, BaseException):
        raise result
    return result


def refit(run_id: str, uri: str, callbacks: list[Callback] = ()) -> Result:
    """trainer.cv_refit=best, once a cross-validated sweep has ranked its points: the winner
    trained on all of train+val and scored on the test split, recorded into the winner's own run
    (test metrics, reports, model), as GridSearchCV(refit=True) refits best_params_."""
    from dlx.tracking import queries

    tags = queries.get_run(uri, run_id)["tags"]
    cfg = OmegaConf.create(queries.text_artifact(uri, run_id, "config.yaml"))
    runtime = Runtime(Path(tags["dlx.output_dir"]), sweep=True,
                      overrides=tuple(tags.get("dlx.overrides", "").split()), refit=run_id)
    return train(cfg, runtime, callbacks)


def train_group(points: list[Point], callbacks: list[Callback] = (),
                fuse: str = "auto") -> list[Result | BaseException]:
    """Train points that differ at most in trainer.epochs and optimizer.lr (cross-validated, also
    dataset.batch_size) as one training: each point's Result, or the error that ended it, in order. `callbacks` (the CLI's progress) follow
    the first point's network. `fuse`: auto | true | false, whether lr points train stacked."""
    cfg, runtime = points[0].cfg, points[0].runtime
    # -- where: the device, and under torchrun this process's place in the DDP group
    device = devices.resolve(cfg.trainer.device)
    group, device = distributed.setup(cfg.trainer.strategy, device, runtime.sweep)
    runs = []
    try:
        devices.setup_process(cfg.trainer, device, runtime.n_jobs)
        main = group is None or group.main  # rank 0 tracks, checkpoints and reports
        runs = [_Run(p, Recorder(p.cfg, p.runtime, main)) for p in points]
        _train(runs, list(callbacks) if main else [], device, group, fuse)
    except Exception as e:  # noqa: BLE001 - every point it reached first fails with it
        if not runs:
            raise
        for r in runs:
            if r.result is None:
                r.result = e
    finally:
        if group:
            group.close()
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


def _train(runs: list[_Run], callbacks, device, group, fuse: str) -> None:
    cfg = runs[0].cfg
    # -- data, model (every network of the group starts from these weights), optimizers
    data, cached = registry.load_cached(cfg.dataset)
    refitting = runs[0].point.runtime.refit is not None  # a cross-validated sweep's winner
    if refitting:
        data = cv.refit_data(data)
    model = models.build(cfg.model, data.spec).to(device)
    reconstructs = getattr(model, "reconstructs", False)
    if reconstructs:  # an autoencoder: its targets are its inputs
        data = data.for_reconstruction()
    if task_of(cfg) is None:  # the data decided the task (a CSV with task=auto): check now
        problems = check_monitor(cfg, data.spec.task)
        if problems:
            raise ConfigError("invalid config: " + "; ".join(problems))
    identity = {"model": OmegaConf.to_container(cfg.model, resolve=True),
                "spec": [data.spec.task, list(data.spec.input_shape), data.spec.num_outputs],
                "optimizer": cfg.optimizer._target_}
    rng = _rng_state(device)  # what each network's training starts from, as in its own run
    members = _members(runs, model, data)
    resume, ckpt_dir = checkpoint.resume_state(
        cfg.trainer.resume, identity, runs[0].point.runtime.sweep and runs[0].point.runtime.rung is None,
        runs[0].point.runtime.output_dir / checkpoint.DIR, _run_dir_of(cfg))

    # -- record: from here on every run ends FINISHED, FAILED or KILLED, never RUNNING
    status, failure = "FAILED", None
    try:
        if cfg.trainer.cv_folds > 1 and not refitting:
            cv.start_workers(_cv_workers(runs, members, device))  # their imports overlap the starts
        trains = members[0][1][-1]  # the run of the first network's training (its longest point)
        for member, share in members:
            for r in share:
                r.recorder.start(data, member.options, resume, cached or r is not runs[0], group,
                                 resumed_dir=ckpt_dir.parent, trains=r is trains)
                r.checkpoints = _checkpointer(r, identity, resume, ckpt_dir)
        if cfg.trainer.cv_folds > 1 and not refitting:  # K-fold on train+val, then the refits
            fits = _cross_validate(runs, members, data, device, callbacks, reconstructs)
            if not fits:  # scores only (trainer.cv_refit=none, or best in a sweep: not yet)
                status = "FINISHED"
                return
            data = cv.refit_data(data)  # the refits train on all of train+val
            torch.manual_seed(cfg.trainer.seed)
            rng = _rng_state(device)
            members = _members(fits, models.build(cfg.model, data.spec).to(device), data)
            for r in fits:
                r.recorder.data(data)  # the refit's preprocessing (fitted on train+val) is its model's

        # -- fit: each network with its point's recorder, checkpoints and milestones
        on_device = data.to(device)
        for member, share in members:
            longest = share[-1]
            member.checkpoints = longest.checkpoints
            pruning = optuna_study.pruning(longest.point.runtime.trial, cfg.trainer.monitor)
            member.callbacks = [*callbacks, longest.recorder, *([pruning] if pruning else [])]
            if len(share) > 1:
                member.callbacks.append(_Milestones(share[:-1], longest, on_device, member.options))
        nets, epochs = [m for m, _ in members], {s[-1].point.epochs for _, s in members}
        batches = {s[-1].cfg.dataset.batch_size for _, s in members}
        example = on_device.batch(on_device.train[0][:2], False)
        stacked = len(nets) > 1 and len(epochs) == 1 and len(batches) == 1 and \
            fused.check(fuse, model, nets[0].options, example)
        if stacked:  # the lr points as K stacked copies in the one loop
            for m in nets[1:]:  # the progress follows the first network only
                m.callbacks = [cb for cb in m.callbacks if cb not in callbacks]
            fit_members(nets, on_device, epochs.pop(), cfg.dataset.batch_size, cfg.trainer.seed)
        else:  # one network after the other, each from the state its own run starts from
            for member, share in members:
                _set_rng_state(rng, device)
                last = share[-1]
                fit_members([member], on_device, last.point.epochs, last.cfg.dataset.batch_size,
                            cfg.trainer.seed, resume=resume, group=group)

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
                if isinstance(cb, _Milestones):  # training ended before some (early stopping)
                    cb.finish_rest(member.model, member.history, tags)
                    tags["dlx.shared_training"] = cb.training_run_id
                elif isinstance(cb, optuna_study.Pruning) and cb.pruned_epoch:  # pruned trial
                    tags.update({"dlx.pruned": "true", "dlx.pruned_epoch": cb.pruned_epoch})
            _finish(share[-1], member.model, member.history, on_device, member.options, tags)
        status = "FINISHED"
    except BaseException as e:
        status, failure = ("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED"), e
        raise
    finally:
        for r in runs:
            r.recorder.end(status, failure)


def _cv_workers(runs: list[_Run], members, device) -> int:
    """How many worker processes train the group's folds (trainer.cv_workers)."""
    cfg = runs[0].cfg
    return devices.cv_workers(cfg.trainer.cv_workers, device, runs[0].point.runtime.n_jobs,
                              len(members) * cfg.trainer.cv_folds)


def _cross_validate(runs: list[_Run], members, data, device, callbacks,
                    reconstructs: bool) -> list[_Run]:
    """Each network's folds, each point scored at its own epoch (its fold_ metrics, cv_mean_/
    cv_std_ and cv_folds.json): the points that trainer.cv_refit refits now, the others ended.
    cv_refit=best refits a plain run, and of a sweep only its winner, once all points are scored
    (`refit`)."""
    cfg = runs[0].cfg
    workers = _cv_workers(runs, members, device)
    networks = [(share[-1].cfg, [r.point.epochs for r in share]) for _, share in members]
    outcomes = cv.cross_validate(networks, data, device, _fresh, callbacks, workers, reconstructs)
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
                _end(r, r.objective, {}, 0)
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
        optimizer, options = _fit_setup(share[-1].cfg, net, data)
        members.append((Member(net, optimizer, options), share))
    return members


def _checkpointer(r: _Run, identity: dict, resume: dict | None, resumed: Path):
    """A point's checkpoints (rank 0, trainer.checkpoint_every > 0), in its own run dir (or the
    resumed run's), saying which run and overrides they belong to."""
    every = r.cfg.trainer.checkpoint_every
    if every <= 0 or not r.recorder.main:
        return None
    overrides = resume["meta"]["overrides"] if resume else " ".join(r.point.runtime.overrides)
    where = resumed if resume else r.point.runtime.output_dir / checkpoint.DIR
    return checkpoint.Checkpointer(where, every, r.recorder.checkpoint_meta(identity, overrides))


# ------------------------------------------------------------------------ the end of a point
def _finish(r: _Run, model, history: History, data, options: dict, tags: dict) -> None:
    """A trained point ends: the test split scored once (under fork_rng: a training that goes on
    draws what it would), its record finished (tags, reports, model) and its Result."""
    cuda = [data.test[0].device] if data.test[0].device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        scores = evaluation.score(model, data.test, data.spec.task, r.cfg.dataset.batch_size,
                                  data.transform)
    if tags:
        r.recorder.tags(tags)
    r.recorder.finish(history, scores, data, model, options)
    _end(r, history.final.get(r.cfg.trainer.monitor) if r.objective is None else r.objective,
         scores.metrics, len(history))


def _end(r: _Run, objective: float | None, test: dict, epochs: int) -> None:
    """The one place a point ends FINISHED and gets its Result."""
    r.recorder.end("FINISHED")
    rec = r.recorder
    r.result = Result(objective, test, epochs, str(r.point.runtime.output_dir), rec.run_id,
                      rec.name, rec.link)


class _Milestones(Callback):
    """The shorter points of a network's training: each records the epochs up to its own, with
    its own checkpoints, then ends at its epoch as its own run would, from a copy of the model
    (with early stopping's best weights when it restores them), so the training goes on as if
    nothing had happened. It is exact only when nothing reads the total epoch count: dlx's
    launcher groups points only then (dlx/sweep/launcher.py)."""

    def __init__(self, runs: list[_Run], training: _Run, data, options: dict):
        self.pending, self.training, self.data, self.options = list(runs), training, data, options
        self.loop = None

    @property
    def training_run_id(self) -> str:
        """The MLflow run of the point that trains (the longest)."""
        return self.training.recorder.run_id or ""

    def on_fit_start(self, loop) -> None:
        self.loop = loop

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        es = self.loop.early_stopping
        for r in list(self.pending):
            r.recorder.on_epoch_end(epoch, metrics)
            if r.checkpoints:  # what its own run would write this epoch
                r.checkpoints(self.loop.state, epoch, best=bool(es and es.best_epoch == epoch),
                              final=epoch == r.point.epochs or self.loop.stopping)
            if epoch == r.point.epochs:
                model = es.copy_as_ended(self.loop.model) if es else copy.deepcopy(self.loop.model)
                self._finish(r, model, self.loop.history)

    def finish_rest(self, model, history: History, tags: dict) -> None:
        """Training ended before some milestones (early stopping): those points end with the
        model as the training ended, as their own runs would have."""
        for r in list(self.pending):
            self._finish(r, model, history, tags)

    def _finish(self, r: _Run, model, source: History, tags: dict | None = None) -> None:
        self.pending.remove(r)
        es = self.loop.early_stopping
        h = History(source)
        h.best_epoch = es.best_epoch if es else None
        restored = es.best_epoch if es is not None and es.restore_best and es.best_state else None
        h.final_epoch, h.seconds, h.stopped_epoch = restored or len(h), source.seconds, source.stopped_epoch
        _finish(r, model, h, self.data, self.options,
                {**(tags or {}), "dlx.shared_training": self.training_run_id})


# ------------------------------------------------------------------------------ building blocks
def _fit_setup(cfg: DictConfig, model, data) -> tuple[torch.optim.Optimizer, dict]:
    """Regularizers (dropout rate, penalties, decoupled decay groups), optimizer and lr schedule
    for `model` on `data`: the optimizer and fit's keyword options. Every network of a group and
    every cross-validation fold go through here, so each trains exactly as its own run does."""
    regs = regularizers.build(cfg.get("regularizer"), model, cfg.trainer.monitor,
                              cfg.trainer.monitor_mode, data.val is not None)
    device = next(model.parameters()).device
    ranks = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    steps = steps_per_epoch(len(data.train[0]), cfg.dataset.batch_size, ranks)
    # trainer.precision / channels_last / capture: `auto` decided for this device and model
    example = data.batch(data.train[0][:cfg.dataset.batch_size], False).to(device)
    fast = devices.fast_paths(cfg.trainer, device, model, steps * cfg.trainer.epochs, example)
    optimizer = optim.build(cfg.optimizer, regs.params, cfg.trainer.compile or fast["capture"], device)
    schedule = schedulers.build(cfg.get("scheduler"), optimizer, cfg.trainer.epochs, steps)
    return optimizer, {"penalty": regs.penalty, "early_stopping": regs.early_stopping,
                       "schedule": schedule, "grad_clip": cfg.trainer.grad_clip,
                       "compile": cfg.trainer.compile, **fast}


def _fresh(cfg: DictConfig, data, device):
    """A new model for `data` with its optimizer and fit options: each CV fold's (in this process
    or a worker's, which imports it from here)."""
    model = models.build(cfg.model, data.spec).to(device)
    return (model, *_fit_setup(cfg, model, data))


def _rng_state(device) -> tuple:
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_rng_state(state: tuple, device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def _run_dir_of(cfg: DictConfig):
    """trainer.resume=<MLflow run id>: that run's output dir, read from the store."""

    def run_dir_of(run_id: str) -> str | None:
        from dlx.tracking import queries, resolve_uri

        return queries.output_dir_of(resolve_uri(cfg.tracking.uri), run_id)
    return run_dir_of
