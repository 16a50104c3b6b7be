"""`train(cfg)`: one run from composed config to MLflow record.

validate -> device -> data -> model -> optimizer -> track -> fit -> test -> log model.
A plain function: the CLI wraps it for Hydra, tests and sweeps call the same thing. It returns
the monitored validation metric, which is what a sweeper optimizes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from dlx import models, plots, tracking
from dlx.callbacks import PARENT_ENV
from dlx.config import flatten, validate
from dlx.data import loader
from dlx.errors import ConfigError
from dlx.training import checkpoint, distributed, regularizers, schedulers
from dlx.training import device as devices
from dlx.training.cv import cross_validate
from dlx.training.fit import Callback, configure, fit
from dlx.training.metrics import (classification_report, confusion_matrix, evaluate,
                                  reconstruction_grid)


@dataclass
class Result:
    objective: float | None  # the monitored validation metric of the final model
    test: dict[str, float]
    epochs: int
    output_dir: str
    run_id: str | None = None
    run_name: str | None = None
    tracking_uri: str | None = None
    extra: dict = field(default_factory=dict)


class _LogEpochs(Callback):
    """Per-epoch metrics to MLflow with step=epoch: one call per epoch, none per batch.
    A resumed run skips the epochs its run already has (redone after the last checkpoint)."""

    def __init__(self, run: tracking.Run, logged: set[int] = frozenset()):
        self.run, self.logged = run, logged

    def on_epoch_end(self, epoch, metrics):
        if epoch not in self.logged:
            self.run.log_metrics(metrics, step=epoch)


def train(cfg: DictConfig, callbacks: list[Callback] = ()) -> Result:
    # -- check everything before building anything
    validate(cfg)
    device = devices.resolve(cfg.trainer.device)
    hydra = HydraConfig.get()
    output_dir = Path(hydra.runtime.output_dir)
    in_sweep = hydra.mode == RunMode.MULTIRUN
    # -- trainer.strategy=ddp (torchrun): rank 0 tracks, checkpoints and reports; all ranks train
    group, device = distributed.setup(cfg.trainer.strategy, device, in_sweep)
    try:
        if group and cfg.trainer.cv_folds > 1:
            raise ConfigError("DDP trains one fit, not a cross-validation: set trainer.cv_folds=0 "
                              "or run it in one process (trainer.strategy=single)")
        return _train(cfg, callbacks if not group or group.main else [], device, group,
                      hydra, output_dir, in_sweep)
    finally:
        if group:
            group.close()


def _train(cfg, callbacks, device, group, hydra, output_dir: Path, in_sweep: bool) -> Result:
    main = group is None or group.main

    # -- parallel jobs share the cores instead of each taking all of them
    n_jobs = hydra.launcher.get("n_jobs") if in_sweep else None
    if n_jobs is not None and n_jobs != 1:
        cores = os.cpu_count() or 1
        torch.set_num_threads(max(1, cores // n_jobs if n_jobs > 0 else 1))

    # -- data, model, optimizer
    configure(cfg.trainer.deterministic, cfg.trainer.precision, device)
    torch.manual_seed(cfg.trainer.seed)
    data, cached = _load(cfg.dataset)
    model = models.build(cfg.model, data.spec).to(device)
    if getattr(model, "reconstructs", False):  # an autoencoder: its targets are its inputs
        data = data.for_reconstruction()
    _check_monitor(cfg, data)
    optimizer, options = _fit_setup(cfg, model, data)  # regularizers, optimizer, lr schedule
    identity = {"model": OmegaConf.to_container(cfg.model, resolve=True),
                "spec": [data.spec.task, list(data.spec.input_shape), data.spec.num_outputs],
                "optimizer": cfg.optimizer._target_}
    resume, ckpt_dir = _resume(cfg, identity, in_sweep, output_dir / checkpoint.DIR)

    # -- tracking: from here on the run ends FINISHED, FAILED or KILLED, never RUNNING
    run = None
    if cfg.tracking.enabled and main:
        uri = tracking.resolve_uri(cfg.tracking.uri)
        name = f"{output_dir.parent.name}_{output_dir.name}" if in_sweep else output_dir.name
        run = tracking.Run(
            uri, cfg.tracking.experiment, name,
            tags={
                "dlx.model": hydra.runtime.choices.get("model"),
                "dlx.dataset": hydra.runtime.choices.get("dataset"),
                "dlx.optimizer": hydra.runtime.choices.get("optimizer"),
                "dlx.output_dir": str(output_dir.resolve()),
                "dlx.overrides": " ".join(hydra.overrides.task),
                "dlx.data_cached": str(cached).lower(),
                # what trainer.precision/channels_last/capture=auto chose for this device
                "dlx.precision": options["precision"],
                "dlx.channels_last": str(options["channels_last"]).lower(),
                "dlx.capture": str(options["capture"]).lower(),
            },
            parent_run_id=os.environ.get(PARENT_ENV) if in_sweep else None,
            # trainer.resume: the checkpoint's run goes on (same run id, no new params)
            run_id=resume["meta"]["run_id"] if resume else None,
        )
        if resume:
            run.set_tags({"dlx.resumed_from_epoch": resume["epoch"],
                          "dlx.resume_overrides": " ".join(hydra.overrides.task)})
    status = "FAILED"
    try:
        logged: set[int] = set()
        if run and resume:  # the run goes on: log the checkpoint's epochs it lacks, once each
            logged = run.logged_steps("train_loss")
            for epoch, metrics in enumerate(resume["history"], 1):
                if epoch not in logged:
                    run.log_metrics(metrics, step=epoch)
                    logged.add(epoch)
        if run and not (resume and resume["meta"]["run_id"]):
            run.log_params(flatten(cfg))
            run.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
            run.log_text("\n".join(hydra.overrides.task) + "\n", "overrides.txt")
            _log_data(run, data)
            if group:
                run.set_tags({"dlx.world_size": group.size, "dlx.backend": group.backend})
        cv = None
        if cfg.trainer.cv_folds > 1:  # K-fold cross-validation on train+val, then one refit
            if resume:
                raise ConfigError("trainer.resume continues one fit, not a cross-validation: "
                                  "drop trainer.resume or set trainer.cv_folds=0")
            fresh = lambda d: _fresh(cfg, d, device)  # noqa: E731
            cv, data = cross_validate(cfg, data, device, fresh, callbacks, run)
            if not cfg.trainer.cv_refit:  # scores only: no final model, no test metrics
                status = "FINISHED"
                return Result(cv["mean"][cfg.trainer.monitor], {}, 0, str(output_dir),
                              *((run.id, run.name, uri) if run else ()), extra={"cv": cv})
            torch.manual_seed(cfg.trainer.seed)
            model, optimizer, options = fresh(data)  # trained below on all of train+val
            if run:  # the refit's preprocessing (fitted on train+val) is the one its model needs
                _log_data(run, data)
        on_device = data.to(device)
        every = cfg.trainer.checkpoint_every
        meta = {**identity, "run_id": run.id if run else None,
                "overrides": resume["meta"]["overrides"] if resume else " ".join(hydra.overrides.task)}
        history = fit(
            model, optimizer, on_device, cfg.trainer.epochs, cfg.dataset.batch_size,
            cfg.trainer.seed, callbacks=[*callbacks, *([_LogEpochs(run, logged)] if run else [])],
            **options, resume=resume,
            checkpoints=checkpoint.Checkpointer(ckpt_dir, every, meta) if every > 0 and main else None,
            group=group,
        )
        if run and history.shards:
            run.log_dict(history.shards, "distributed.json")
        if run and history.best_epoch is not None:
            run.log_metrics({"best_epoch": history.best_epoch})
        if run and history.stopped_epoch is not None:
            run.log_metrics({"stopped_epoch": history.stopped_epoch})

        # -- final evaluation on the held-out test split
        task = data.spec.task
        test, out = evaluate(model, *on_device.test, task, cfg.dataset.batch_size, data.transform)
        test = {f"test_{k}": v for k, v in test.items()}
        report = None
        if data.spec.is_classification:
            report = classification_report(out, on_device.test[1], task, data.spec.class_names)
            test["test_f1_macro"] = report["macro avg"]["f1-score"]
        result = Result(
            objective=cv["mean"][cfg.trainer.monitor] if cv else history.final.get(cfg.trainer.monitor),
            test=test, epochs=len(history), output_dir=str(output_dir),
            extra={"cv": cv} if cv else {},
        )
        if run:
            run.log_metrics(test)
            figures = output_dir / "plots"
            figures.mkdir(parents=True, exist_ok=True)
            run.log_artifact(plots.learning_curves(list(history), figures / "learning_curves.png"),
                             "plots")
            if report is not None:
                run.log_dict(report, "classification_report.json")
                cm = confusion_matrix(out, on_device.test[1], task, data.spec.class_names)
                run.log_dict(cm, "confusion_matrix.json")
                run.log_artifact(plots.confusion_matrix(cm, figures / "confusion_matrix.png"), "plots")
            if task == "regression":
                png = plots.predicted_vs_true(out[:, 0].cpu().numpy(),
                                              on_device.test[1][:, 0].cpu().numpy(),
                                              figures / "predicted_vs_true.png")
                run.log_artifact(png, "plots")
            if task == "reconstruction":
                reconstruction_grid(on_device.test[0], out, output_dir / "reconstructions.png")
                run.log_artifact(output_dir / "reconstructions.png")
            if cfg.tracking.log_model:
                run.model_format = cfg.tracking.model_format
                example = data.batch(data.test[0][:4], train=False).numpy()
                run.log_model(model.cpu().eval(), example)
            result.run_id, result.run_name, result.tracking_uri = run.id, run.name, uri
        status = "FINISHED"
        return result
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if run:
            run.end(status)


def _fit_setup(cfg: DictConfig, model, data) -> tuple[torch.optim.Optimizer, dict]:
    """Regularizers (dropout rate, penalties, decoupled decay groups), optimizer and lr schedule
    for `model` on `data`: the optimizer and fit's keyword options. The run and every
    cross-validation fold go through here, so folds train exactly as the run does."""
    has_val = data.val is not None
    regs = regularizers.build(cfg.get("regularizer"), model, cfg.optimizer._target_,
                              cfg.trainer.monitor, cfg.trainer.monitor_mode, has_val)
    optimizer = instantiate(cfg.optimizer)(params=regs.params)
    steps = math.ceil(len(data.train[0]) / cfg.dataset.batch_size)
    schedule = schedulers.build(cfg.get("scheduler"), optimizer, cfg.trainer.epochs, steps, has_val)
    # trainer.precision / channels_last / capture: `auto` decided for this device and model
    device = next(model.parameters()).device
    fast = devices.fast_paths(cfg.trainer, device, model, steps * cfg.trainer.epochs)
    return optimizer, {"penalty": regs.penalty, "early_stopping": regs.early_stopping,
                       "schedule": schedule, "grad_clip": cfg.trainer.grad_clip,
                       "compile": cfg.trainer.compile, **fast}


def _fresh(cfg: DictConfig, data, device):
    """A new model for `data` with its optimizer and fit options: each CV fold's, and the refit's."""
    model = models.build(cfg.model, data.spec).to(device)
    return (model, *_fit_setup(cfg, model, data))


def _log_data(run: tracking.Run, data) -> None:
    """data.json and the dataset's own artifacts (vocabulary, fitted preprocessing, ...)."""
    run.log_dict(data.info, "data.json")
    for name, item in data.artifacts.items():
        if isinstance(item, dict):
            run.log_dict(item, name)
        elif isinstance(item, str):
            run.log_text(item, name)
        else:
            run.log_artifact(item)


_DATA_CACHE: dict[str, object] = {}


def _load(cfg: DictConfig):
    """The dataset, read once per process and reused by later jobs of an in-process sweep.
    Keyed by the dataset config without batch_size (which only changes how it is batched)."""
    options = OmegaConf.to_container(cfg, resolve=True)
    options.pop("batch_size", None)
    key = repr(sorted(options.items()))
    if key in _DATA_CACHE:
        return _DATA_CACHE[key], True
    data = loader.load(cfg)
    _DATA_CACHE.clear()  # one dataset at a time: a sweep over datasets must not pile them up
    _DATA_CACHE[key] = data
    return data, False


def _resume(cfg: DictConfig, identity: dict, in_sweep: bool, ckpt_dir: Path):
    """trainer.resume -> (checkpoint state, its folder: the resumed run keeps writing there);
    (None, ckpt_dir) when not resuming."""
    if not cfg.trainer.resume:
        return None, ckpt_dir
    if in_sweep:
        raise ConfigError(f"trainer.resume={cfg.trainer.resume} continues one run: drop -m")
    uri = tracking.resolve_uri(cfg.tracking.uri)
    spec = str(cfg.trainer.resume)
    path = checkpoint.locate(spec, lambda run_id: tracking.output_dir_of(uri, run_id))
    state = checkpoint.load(path)
    checkpoint.check_compatible(spec, state["meta"], identity)
    return state, path.parent


def _check_monitor(cfg: DictConfig, data) -> None:
    names = ["val_loss"] + {"regression": ["val_mse", "val_mae", "val_r2"],
                            "reconstruction": ["val_mse", "val_mae"]}.get(data.spec.task, ["val_accuracy"])
    if cfg.trainer.monitor not in names:
        raise ConfigError(
            f"trainer.monitor={cfg.trainer.monitor} is not logged for a {data.spec.task} task: "
            f"use one of {', '.join(names)}"
        )
    for key in ("regularizer.early_stopping.monitor", "scheduler.monitor"):
        value = OmegaConf.select(cfg, key)
        if value is not None and value not in names:
            raise ConfigError(f"{key}={value} is not logged for a {data.spec.task} task: "
                              f"use one of {', '.join(names)}")
