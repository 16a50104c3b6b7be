"""`train(cfg, runtime)`: one run, from composed config to MLflow record, read top to bottom:

    where -> data -> model -> fit -> test -> record

The steps below it are functions of their own: the sweep layer (dlx/sweep/group.py) puts the same
steps together differently to train several points at once (shared epochs, stacked lrs,
cross-validation), so every run, shared or not, is built, trained, tested and recorded alike.

Plain functions: dlx's Hydra task (dlx/cli/jobs.py), tests and benchmarks call them. A Result's
objective is the monitored validation metric, what a sweeper optimizes. The config has been
validated (dlx/config/validate.py) by the caller; what a run records is the recorder's business
(dlx/tracking/recorder.py), done in the tracking writer's process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from omegaconf import DictConfig, OmegaConf

from dlx import models
from dlx.config import check_monitor, task_of
from dlx.data import registry
from dlx.errors import ConfigError
from dlx.runtime import Result, Runtime
from dlx.tracking.recorder import Recorder
from dlx.training import checkpoint, distributed, evaluation, optim, regularizers, schedulers
from dlx.training import cv as folds
from dlx.training import device as devices
from dlx.training.callbacks import Callback
from dlx.training.fit import History, Member
from dlx.training.fit import train as fit
from dlx.training.metrics import steps_per_epoch

__all__ = ["Result", "train"]  # Result lives in dlx.runtime (no torch); imported from here too


def train(cfg: DictConfig, runtime: Runtime, callbacks: list[Callback] = ()) -> Result:
    """One run; its failure raised. (Cross-validation is several fits of one point: the sweep
    layer's, dlx/sweep/group.py, which calls this for every point it trains alone.)"""
    if cfg.trainer.cv_folds > 1 and not runtime.refit:
        raise ValueError("dlx.run.train trains one fit; a cross-validated run is the sweep "
                         "layer's: dlx.sweep.points.train([Point(cfg, runtime)])")
    # -- where: the device, and under torchrun this process's place in the DDP group
    device, group = where(cfg, runtime)
    try:
        main = group is None or group.main  # rank 0 tracks, checkpoints and reports
        recorder = Recorder(cfg, runtime, main)
        callbacks = list(callbacks) if main else []

        # -- data and model (an autoencoder's targets are its inputs)
        data, cached = load(cfg, runtime)
        model, data = build(cfg, data, device)
        optimizer, options = fit_setup(cfg, model, data)
        ident = identity(cfg, data)
        resume, ckpt_dir = checkpoint.resume_state(
            cfg.trainer.resume, ident, runtime.sweep and runtime.rung is None,
            runtime.output_dir / checkpoint.DIR, _run_dir_of(cfg))

        # -- record: from here on the run ends FINISHED, FAILED or KILLED, never RUNNING
        with recorded([recorder]):
            recorder.start(data, options, resume, cached, group, resumed_dir=ckpt_dir.parent)

            # -- fit (checkpoints as it goes; `resume`: from a checkpoint's epoch on)
            on_device = data.to(device)
            member = Member(model, optimizer, options, [*callbacks, recorder],
                            checkpointer(recorder, ident, resume, ckpt_dir))
            fit([member], on_device, cfg.trainer.epochs, cfg.dataset.batch_size, cfg.trainer.seed,
                resume=resume, group=group)
            if member.error is not None:  # a non-finite loss
                raise member.error

            # -- test, once, with the final weights; the record finished
            return finish(recorder, model, member.history, on_device, options, tags_of(callbacks))
    finally:
        if group is not None:
            group.close()


# ------------------------------------------------------------------------------------ the steps
def where(cfg: DictConfig, runtime: Runtime) -> tuple[torch.device, distributed.Group | None]:
    """The device, this process's place in a DDP group (None: one process), and the process set
    up for the run: threads, deterministic kernels, the seed."""
    device = devices.resolve(cfg.trainer.device)
    group, device = distributed.setup(cfg.trainer.strategy, device, runtime.sweep)
    try:
        devices.setup_process(cfg.trainer, device, runtime.n_jobs)
    except BaseException:
        if group is not None:
            group.close()
        raise
    return device, group


def load(cfg: DictConfig, runtime: Runtime):
    """The run's data (read once per process: `cached` says it was read before); a refit of a
    cross-validated winner trains on all of train+val."""
    data, cached = registry.load_cached(cfg.dataset)
    return (folds.refit_data(data) if runtime.refit else data), cached


def build(cfg: DictConfig, data, device: torch.device):
    """The model for the data (an autoencoder: the data becomes inputs as targets); a task the
    data decided (a CSV with task=auto) is checked against trainer.monitor now."""
    model = models.build(cfg.model, data.spec).to(device)
    if getattr(model, "reconstructs", False):
        data = data.for_reconstruction()
    if task_of(cfg) is None:
        problems = check_monitor(cfg, data.spec.task)
        if problems:
            raise ConfigError("invalid config: " + "; ".join(problems))
    return model, data


def identity(cfg: DictConfig, data) -> dict:
    """What a checkpoint must match to be resumed: the model, the data's shape, the optimizer."""
    return {"model": OmegaConf.to_container(cfg.model, resolve=True),
            "spec": [data.spec.task, list(data.spec.input_shape), data.spec.num_outputs],
            "optimizer": cfg.optimizer._target_}


def fit_setup(cfg: DictConfig, model, data) -> tuple[torch.optim.Optimizer, dict]:
    """Regularizers (dropout rate, penalties, decoupled decay groups), optimizer and lr schedule
    for `model` on `data`: the optimizer and fit's keyword options. Every network of a group and
    every cross-validation fold go through here, so each trains exactly as its own run does."""
    regs = regularizers.build(cfg.get("regularizer"), model, cfg.trainer.monitor,
                              cfg.trainer.monitor_mode, data.val is not None)
    device = next(model.parameters()).device
    ranks = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    steps = steps_per_epoch(len(data.train[0]), cfg.dataset.batch_size, ranks)
    # trainer.precision / channels_last / capture: `auto` decided for this device and model
    # a CPU's choices follow the work of one batch (CUDA's do not)
    example = data.batch(data.train[0][:cfg.dataset.batch_size], False).to(device) \
        if device.type == "cpu" else None
    fast = devices.fast_paths(cfg.trainer, device, model, steps * cfg.trainer.epochs, example)
    optimizer = optim.build(cfg.optimizer, regs.params, cfg.trainer.compile or fast["capture"], device)
    schedule = schedulers.build(cfg.get("scheduler"), optimizer, cfg.trainer.epochs, steps)
    return optimizer, {"penalty": regs.penalty, "early_stopping": regs.early_stopping,
                       "schedule": schedule, "grad_clip": cfg.trainer.grad_clip,
                       "compile": cfg.trainer.compile, **fast}


def fresh(cfg: DictConfig, data, device):
    """A new model for `data` with its optimizer and fit options: each cross-validation fold's
    (in this process or a fold worker's, which imports it from here)."""
    model = models.build(cfg.model, data.spec).to(device)
    return (model, *fit_setup(cfg, model, data))


def checkpointer(recorder: Recorder, ident: dict, resume: dict | None, folder):
    """A run's checkpoints (rank 0, trainer.checkpoint_every > 0), in its own run dir (or the
    resumed run's), saying which run and overrides they belong to."""
    every = recorder.cfg.trainer.checkpoint_every
    if every <= 0 or not recorder.main:
        return None
    overrides = resume["meta"]["overrides"] if resume else " ".join(recorder.runtime.overrides)
    return checkpoint.Checkpointer(folder, every, recorder.checkpoint_meta(ident, overrides))


@contextlib.contextmanager
def recorded(recorders: list[Recorder]) -> Iterator[None]:
    """The block after which every run of `recorders` has ended: FINISHED (unless one ended
    already, e.g. FAILED on its own), FAILED on an error, KILLED on Ctrl-C or SIGTERM."""
    status, failure = "FAILED", None
    try:
        yield
        status = "FINISHED"
    except BaseException as e:
        status, failure = ("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED"), e
        raise
    finally:
        for r in recorders:
            r.end(status, failure)


def finish(recorder: Recorder, model, history: History, data, options: dict, tags: dict,
           objective: float | None = None) -> Result:
    """A trained run ends: the test split scored once (under fork_rng: a training that goes on
    draws what it would), its record finished (tags, reports, model) and its Result.
    `objective`: cross-validated, the folds' mean (else the final model's monitored metric)."""
    cfg = recorder.cfg
    cuda = [data.test[0].device] if data.test[0].device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        scores = evaluation.score(model, data.test, data.spec.task, cfg.dataset.batch_size,
                                  data.transform)
    if tags:
        recorder.tags(tags)
    recorder.finish(history, scores, data, model, options)
    if objective is None:
        objective = history.final.get(cfg.trainer.monitor)
    return end(recorder, objective, scores.metrics, len(history))


def end(recorder: Recorder, objective: float | None, test: dict, epochs: int) -> Result:
    """The one place a run ends FINISHED and gets its Result."""
    recorder.end("FINISHED")
    return Result(objective, test, epochs, str(recorder.runtime.output_dir), recorder.run_id,
                  recorder.name, recorder.link)


def tags_of(callbacks) -> dict[str, str]:
    """What the fit's callbacks add to the run's record (a pruned trial: dlx.pruned)."""
    return {k: v for cb in callbacks for k, v in (getattr(cb, "end_tags", dict)()).items()}


def _run_dir_of(cfg: DictConfig):
    """trainer.resume=<MLflow run id>: that run's output dir, read from the store."""

    def run_dir_of(run_id: str) -> str | None:
        from dlx.tracking import queries, resolve_uri

        return queries.output_dir_of(resolve_uri(cfg.tracking.uri), run_id)
    return run_dir_of
