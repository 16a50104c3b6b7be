"""`train(cfg)`: one run from composed config to MLflow record.

validate -> device -> data -> model -> optimizer -> track -> fit -> test -> log model.
A plain function: the CLI wraps it for Hydra, tests and sweeps call the same thing. It returns
the monitored validation metric, which is what a sweeper optimizes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from dlx import models, tracking
from dlx.callbacks import PARENT_ENV
from dlx.config import flatten, validate
from dlx.data import loader
from dlx.errors import ConfigError
from dlx.training import device as devices
from dlx.training.fit import Callback, fit
from dlx.training.metrics import classification_report, evaluate


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
    """Per-epoch metrics to MLflow with step=epoch: one call per epoch, none per batch."""

    def __init__(self, run: tracking.Run):
        self.run = run

    def on_epoch_end(self, epoch, metrics):
        self.run.log_metrics(metrics, step=epoch)


def train(cfg: DictConfig, callbacks: list[Callback] = ()) -> Result:
    # -- check everything before building anything
    validate(cfg)
    device = devices.resolve(cfg.trainer.device)
    hydra = HydraConfig.get()
    output_dir = Path(hydra.runtime.output_dir)
    in_sweep = hydra.mode == RunMode.MULTIRUN

    # -- data, model, optimizer
    torch.manual_seed(cfg.trainer.seed)
    data = loader.load(cfg.dataset)
    _check_monitor(cfg, data)
    model = models.build(cfg.model, data.spec).to(device)
    optimizer = instantiate(cfg.optimizer)(params=model.parameters())

    # -- tracking: from here on the run ends FINISHED, FAILED or KILLED, never RUNNING
    run = None
    if cfg.tracking.enabled:
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
            },
            parent_run_id=os.environ.get(PARENT_ENV) if in_sweep else None,
        )
    status = "FAILED"
    try:
        if run:
            run.log_params(flatten(cfg))
            run.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
            run.log_text("\n".join(hydra.overrides.task) + "\n", "overrides.txt")
            run.log_dict(data.info, "data.json")
            for name, item in data.artifacts.items():
                if isinstance(item, dict):
                    run.log_dict(item, name)
                elif isinstance(item, str):
                    run.log_text(item, name)
                else:
                    run.log_artifact(item)
        on_device = data.to(device)
        history = fit(
            model, optimizer, on_device, cfg.trainer.epochs, cfg.dataset.batch_size,
            cfg.trainer.seed, callbacks=[*callbacks, *([_LogEpochs(run)] if run else [])],
        )

        # -- final evaluation on the held-out test split
        task = data.spec.task
        test, out = evaluate(model, *on_device.test, task, cfg.dataset.batch_size, data.transform)
        test = {f"test_{k}": v for k, v in test.items()}
        report = None
        if data.spec.is_classification:
            report = classification_report(out, on_device.test[1], task, data.spec.class_names)
            test["test_f1_macro"] = report["macro avg"]["f1-score"]
        result = Result(
            objective=history[-1].get(cfg.trainer.monitor),
            test=test, epochs=len(history), output_dir=str(output_dir),
        )
        if run:
            run.log_metrics(test)
            if report is not None:
                run.log_dict(report, "classification_report.json")
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


def _check_monitor(cfg: DictConfig, data) -> None:
    names = ["val_loss"] + (["val_accuracy"] if data.spec.is_classification else ["val_mae", "val_r2"])
    if cfg.trainer.monitor not in names:
        raise ConfigError(
            f"trainer.monitor={cfg.trainer.monitor} is not logged for a {data.spec.task} task: "
            f"use one of {', '.join(names)}"
        )
