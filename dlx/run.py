"""`train(cfg)`: one run, from composed config to MLflow record, read top to bottom:

    where -> data -> model -> optimizer -> record -> fit -> test -> record

A plain function: the CLI wraps it for Hydra; tests, benchmarks and sweeps call the same thing.
It returns the monitored validation metric, which is what a sweeper optimizes. The config has
been validated (dlx/config/validate.py) by the caller; what a run records is the recorder's
business (dlx/tracking/recorder.py), done in the tracking writer's process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from dlx import models
from dlx.config import check_monitor, task_of
from dlx.data import registry
from dlx.errors import ConfigError
from dlx.runtime import Runtime
from dlx.sweep import fused, optuna_study, prefix
from dlx.tracking.recorder import Recorder
from dlx.training import checkpoint, distributed, evaluation, optim, regularizers, schedulers
from dlx.training import device as devices
from dlx.training.cv import cross_validate
from dlx.training.fit import Callback, fit
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
    output_dir, in_sweep = runtime.output_dir, runtime.sweep
    shared = prefix.result_for(output_dir) if in_sweep else None
    if shared is not None:  # a sweep point trained as a milestone of a longer point
        return Result(**shared)
    # -- where: the device, and under torchrun this process's place in the DDP group
    device = devices.resolve(cfg.trainer.device)
    group, device = distributed.setup(cfg.trainer.strategy, device, in_sweep)
    try:
        devices.setup_process(cfg.trainer, device, runtime.n_jobs)
        main = group is None or group.main  # rank 0 tracks, checkpoints and reports
        recorder = Recorder(cfg, runtime, main)
        return _train(cfg, list(callbacks) if main else [], device, group, recorder, in_sweep)
    finally:
        if group:
            group.close()


def _train(cfg, callbacks, device, group, recorder: Recorder, in_sweep: bool) -> Result:
    # -- data, model, optimizer
    data, cached = registry.load_cached(cfg.dataset)
    model = models.build(cfg.model, data.spec).to(device)
    if getattr(model, "reconstructs", False):  # an autoencoder: its targets are its inputs
        data = data.for_reconstruction()
    if task_of(cfg) is None:  # the data decided the task (a CSV with task=auto): check now
        problems = check_monitor(cfg, data.spec.task)
        if problems:
            raise ConfigError("invalid config: " + "; ".join(problems))
    optimizer, options = _fit_setup(cfg, model, data)
    identity = {"model": OmegaConf.to_container(cfg.model, resolve=True),
                "spec": [data.spec.task, list(data.spec.input_shape), data.spec.num_outputs],
                "optimizer": cfg.optimizer._target_}
    rung = recorder.runtime.rung  # sweep=halving: a candidate going on
    resume, ckpt_dir = checkpoint.resume_state(cfg.trainer.resume, identity, in_sweep and rung is None,
                                               recorder.output_dir / checkpoint.DIR, _run_dir_of(cfg))

    # -- record: from here on the run ends FINISHED, FAILED or KILLED, never RUNNING
    status, milestones = "FAILED", None
    try:
        recorder.start(data, options, resume, cached, group, resumed_dir=ckpt_dir.parent)
        cv = None
        if cfg.trainer.cv_folds > 1:  # K-fold cross-validation on train+val, then one refit
            fresh = lambda d: _fresh(cfg, d, device)  # noqa: E731
            cv, data = cross_validate(cfg, data, device, fresh, callbacks, recorder)
            if not cfg.trainer.cv_refit:  # scores only: no final model, no test metrics
                status = "FINISHED"
                return Result(cv["mean"][cfg.trainer.monitor], {}, 0, str(recorder.output_dir),
                              recorder.run_id, recorder.name, recorder.link)
            torch.manual_seed(cfg.trainer.seed)
            model, optimizer, options = fresh(data)  # trained below on all of train+val
            recorder.data(data)  # the refit's preprocessing (fitted on train+val) is its model's

        # -- fit (with the shorter points of a sweep that share this training, if any)
        on_device = data.to(device)
        stacked = fused.train(cfg, on_device, model, options, recorder, identity,
                              setup=lambda c, m: _fit_setup(c, m, data), callbacks=callbacks)
        if stacked is not None:  # trained with the sweep points that differ only in its lr
            status = "FINISHED"
            return Result(**stacked)
        milestones = prefix.milestones(cfg, on_device, options, identity, recorder)
        pruning = optuna_study.pruning(recorder.runtime.trial, cfg.trainer.monitor)
        overrides = resume["meta"]["overrides"] if resume else " ".join(recorder.runtime.overrides)
        meta = recorder.checkpoint_meta(identity, overrides)
        every = cfg.trainer.checkpoint_every
        history = fit(
            model, optimizer, on_device, cfg.trainer.epochs, cfg.dataset.batch_size,
            cfg.trainer.seed, callbacks=[*callbacks, recorder, *filter(None, [milestones, pruning])],
            **options, resume=resume,
            checkpoints=checkpoint.Checkpointer(ckpt_dir, every, meta)
            if every > 0 and recorder.main else None,
            group=group,
        )

        if milestones:
            milestones.finish_rest(history, model)
        if pruning and pruning.pruned_epoch:  # the Optuna pruner stopped this trial
            recorder.tags({"dlx.pruned": "true", "dlx.pruned_epoch": pruning.pruned_epoch})

        # -- test: the held-out split, once, with the final weights
        scores = evaluation.score(model, on_device.test, data.spec.task, cfg.dataset.batch_size,
                                  data.transform)
        recorder.finish(history, scores, on_device, model, options)
        status = "FINISHED"
        objective = cv["mean"][cfg.trainer.monitor] if cv else history.final.get(cfg.trainer.monitor)
        return Result(objective, scores.metrics, len(history), str(recorder.output_dir),
                      recorder.run_id, recorder.name, recorder.link)
    except BaseException as e:
        status = "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED"
        if milestones:
            milestones.end(status, e)
        raise
    finally:
        recorder.end(status)


def _fit_setup(cfg: DictConfig, model, data) -> tuple[torch.optim.Optimizer, dict]:
    """Regularizers (dropout rate, penalties, decoupled decay groups), optimizer and lr schedule
    for `model` on `data`: the optimizer and fit's keyword options. The run and every
    cross-validation fold go through here, so folds train exactly as the run does."""
    regs = regularizers.build(cfg.get("regularizer"), model, cfg.trainer.monitor,
                              cfg.trainer.monitor_mode, data.val is not None)
    device = next(model.parameters()).device
    ranks = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    steps = steps_per_epoch(len(data.train[0]), cfg.dataset.batch_size, ranks)
    # trainer.precision / channels_last / capture: `auto` decided for this device and model
    fast = devices.fast_paths(cfg.trainer, device, model, steps * cfg.trainer.epochs)
    optimizer = optim.build(cfg.optimizer, regs.params, compiled=cfg.trainer.compile or fast["capture"])
    schedule = schedulers.build(cfg.get("scheduler"), optimizer, cfg.trainer.epochs, steps)
    return optimizer, {"penalty": regs.penalty, "early_stopping": regs.early_stopping,
                       "schedule": schedule, "grad_clip": cfg.trainer.grad_clip,
                       "compile": cfg.trainer.compile, **fast}


def _fresh(cfg: DictConfig, data, device):
    """A new model for `data` with its optimizer and fit options: each CV fold's, and the refit's."""
    model = models.build(cfg.model, data.spec).to(device)
    return (model, *_fit_setup(cfg, model, data))


def _run_dir_of(cfg: DictConfig):
    """trainer.resume=<MLflow run id>: that run's output dir, read from the store."""

    def run_dir_of(run_id: str) -> str | None:
        from dlx.tracking import queries, resolve_uri

        return queries.output_dir_of(resolve_uri(cfg.tracking.uri), run_id)
    return run_dir_of
