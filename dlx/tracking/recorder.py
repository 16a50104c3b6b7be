"""What a run records, decided here and carried out by the tracking writer (dlx/tracking/writer.py):

    start   params (the flattened resolved config), tags that lead back to the Hydra output
            dir, config.yaml, overrides.txt, data.json and the dataset's fitted artifacts
    epochs  train/val metrics with step=epoch (a fit callback: one message per epoch)
    folds   fold_val_<metric> with step=fold, cv_mean_/cv_std_ and cv_folds.json
    finish  best/stopped epoch, test metrics, classification report and confusion matrix,
            learning curves (and per task a scatter or reconstructions), the model's weights
    end     FINISHED, FAILED or KILLED: never RUNNING

A run with tracking off gets a Recorder that records nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlx.config import flatten
from dlx.runtime import Runtime
from dlx.tracking import ERROR_TAG
from dlx.tracking import messages as m
from dlx.tracking.ranking import CV_MEAN, CV_STD, FOLD
from dlx.training.callbacks import Callback

SCORES_ONLY = "dlx.scores_only"  # "true": a cross-validated run that was not refit (no model)


def _ms(t: float | None = None) -> int:
    return int((time.time() if t is None else t) * 1000)


def prepare(cfg: DictConfig):
    """Have the writer open the store and the experiment now, ahead of the run (the CLI calls
    this as soon as the config is valid, before torch is imported); the answer is the
    experiment's id."""
    if cfg.tracking.enabled:
        from dlx.tracking import client, resolve_uri

        outage(cfg)
        return client.writer().send(m.Open(resolve_uri(cfg.tracking.uri), cfg.tracking.experiment),
                                    reply=True)
    return None


def outage(cfg: DictConfig) -> None:
    """Tell the writer how long a tracking server that goes away is waited for, and where the
    records go after that (docs/cluster.md#a-tracking-outage)."""
    from dlx.tracking import client, resolve_uri

    client.writer().send(m.Outage(resolve_uri(cfg.tracking.uri), float(cfg.tracking.outage_wait),
                                  str(Path(cfg.tracking.spool).expanduser().resolve())))


class Recorder(Callback):
    def __init__(self, cfg: DictConfig, runtime: Runtime, main: bool = True):
        """`runtime`: how the run was started (its output dir, name, overrides, the sweep's
        parent run); `main`: this process is the one that records (DDP: rank 0)."""
        from dlx.tracking import client, resolve_uri

        self.cfg, self.runtime, self.main = cfg, runtime, main
        self.output_dir, self.started, self.name = runtime.output_dir, runtime.started, runtime.name
        self.writer = client.writer() if cfg.tracking.enabled and main else None
        self.uri = resolve_uri(cfg.tracking.uri)
        self.parent = runtime.parent
        self.key = f"{os.getpid()}:{self.output_dir}"  # names this run in the writer's messages
        self._id: str | None = None
        self._reply = None  # the writer's answer to start_run: the run id
        self.logged: set[int] = set()  # epochs the run has already (a resumed run)
        self.ended = False
        self._experiment = prepare(cfg) if self.writer else None  # (again: opening costs nothing)

    # -- the run's identity
    @property
    def run_id(self) -> str | None:
        """The MLflow run id (waits for the writer to have created the run)."""
        if self._id is None and self._reply is not None:
            self._id = self._reply.result()
        return self._id

    @property
    def link(self) -> str | None:
        """The run's page in MLflow's UI (Model-training view)."""
        from dlx.tracking import ui_link

        return ui_link(self.uri, self._experiment.result(), self.run_id) if self._experiment else None

    def known_run_id(self) -> str | None:
        """The run id if the writer has answered already."""
        if self._id is None and self._reply is not None and self._reply.ready():
            return self.run_id
        return self._id

    def checkpoint_meta(self, identity: dict, overrides: str):
        """What a checkpoint says it belongs to: the run's identity, its MLflow run id and the
        overrides that rebuild it. Only the final checkpoint waits for the run id; one written
        before it was known is resumed by its output dir instead."""
        return lambda final: {**identity, "run_id": self.run_id if final else self.known_run_id(),
                              "overrides": overrides}

    # -- start
    def start(self, data, options: dict, resume: dict | None, cached: bool, group=None,
              resumed_dir: Path | None = None, trains: bool = True) -> None:
        """The run begins: a new one, or with `resume` (a checkpoint's state, from the run dir
        `resumed_dir`) the checkpoint's run goes on. `trains`: this run is the one its group's
        training records into (the first network's longest point), so it is the one that samples
        the system metrics: one monitor per training, not one per point of a 27-point group."""
        if not self.writer:
            return
        choices, cfg = self.runtime.choices, self.cfg
        overrides = list(self.runtime.overrides)
        tags = {
            "dlx.model": choices.get("model"), "dlx.dataset": choices.get("dataset"),
            "dlx.optimizer": choices.get("optimizer"),
            "dlx.output_dir": str(self.output_dir.resolve()),
            "dlx.overrides": " ".join(overrides), "dlx.data_cached": str(cached).lower(),
            # what trainer.precision/channels_last/capture=auto chose for this device
            "dlx.precision": options["precision"],
            "dlx.precision_why": options.get("precision_why") or options["precision"],
            "dlx.channels_last": str(options["channels_last"]).lower(),
            "dlx.capture": str(options["capture"]).lower(),
            "dlx.threads": str(options.get("threads") or "default"),
            **({"dlx.world_size": group.size, "dlx.backend": group.backend} if group else {}),
        }
        rung = self.runtime.rung
        if rung is not None:  # sweep=halving: the rung this candidate has reached
            tags["dlx.rung"] = rung
        if self.runtime.run_id is not None:  # cv_refit=best: the sweep's winner, into its run
            self._id, _ = self.writer.call(m.StartRun(
                self.key, self.uri, cfg.tracking.experiment, self.name, tags, flatten(cfg), None,
                _ms(self.started), str(self.output_dir), run_id=self.runtime.run_id,
                resume=str(self.output_dir.resolve())))
            self.writer.send(m.SetTags(self.key, {SCORES_ONLY: "false", "dlx.refit": "winner"}))
        elif resume is None:
            self._reply = self.writer.send(m.StartRun(
                self.key, self.uri, cfg.tracking.experiment, self.name, tags, flatten(cfg),
                self.parent, _ms(self.started), str(self.output_dir)), reply=True)
        else:  # trainer.resume: the checkpoint's run goes on; it keeps its params and tags
            self._id, continued = self.writer.call(m.StartRun(
                self.key, self.uri, cfg.tracking.experiment, self.name, tags, flatten(cfg), None,
                _ms(self.started), str(self.output_dir), run_id=resume["meta"]["run_id"],
                resume=str(resumed_dir.resolve())))
            self.writer.send(m.SetTags(self.key, {
                "dlx.resumed_from_epoch": resume["epoch"], "dlx.resume_overrides": " ".join(overrides),
                **({"dlx.rung": rung} if rung is not None else {})}))
            self.logged = set(self.writer.call(m.LoggedSteps(self.key, "train_loss")))
            for epoch, metrics in enumerate(resume["history"], 1):  # epochs it lacks, once each
                self.on_epoch_end(epoch, metrics)
            if continued:
                return
        self.writer.send(m.LogFiles(self.key, {
            "config.yaml": OmegaConf.to_yaml(cfg, resolve=True),
            "overrides.txt": "\n".join(overrides) + "\n"}))
        if cfg.tracking.system_metrics and trains:
            self.writer.send(m.SystemMetrics(self.key))
        self.data(data)

    def data(self, data) -> None:
        """data.json, the dataset's own artifacts (vocabulary, fitted preprocessing, ...) and its
        record in MLflow's dataset tab."""
        from dlx.data.registry import source

        if self.writer:
            self.writer.send(m.LogFiles(self.key, {"data.json": data.info, **data.artifacts}))
            sizes = {s: data.info.get(f"n_{s}", 0) for s in ("train", "val", "test")}
            self.writer.send(m.Inputs(self.key, source(self.cfg.dataset), sizes))

    def tags(self, tags: dict) -> None:
        if self.writer:
            self.writer.send(m.SetTags(self.key, tags))

    # -- epochs (a fit callback) and cross-validation folds
    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if not self.writer:
            return
        if epoch not in self.logged:
            self.writer.send(m.LogMetrics(self.key, metrics, epoch, _ms()))
            self.logged.add(epoch)
        self.writer.check()  # a store that stopped working ends the run now, not at its end

    def fold(self, i: int, scores: dict[str, float]) -> None:
        if self.writer:
            self.writer.send(m.LogMetrics(self.key, {f"{FOLD}{k}": v for k, v in scores.items()}, i))

    def cross_validation(self, summary: dict) -> None:
        if self.writer:
            self.writer.send(m.LogMetrics(self.key, {
                **{f"{CV_MEAN}{n}": v for n, v in summary["mean"].items()},
                **{f"{CV_STD}{n}": v for n, v in summary["std"].items()}}))
            self.writer.send(m.LogFiles(self.key, {"cv_folds.json": summary}))

    # -- finish
    def finish(self, history, scores, data, model, options: dict) -> None:
        """The end of a trained run: test scores, reports, figures and the model."""
        if not self.writer:
            return
        from dlx import models

        send, key, task = self.writer.send, self.key, data.spec.task
        final = {"best_epoch": history.best_epoch, "stopped_epoch": history.stopped_epoch}
        send(m.LogMetrics(key, {**scores.metrics, **{k: v for k, v in final.items() if v}}))
        if history.shards:
            send(m.LogFiles(key, {"distributed.json": history.shards}))
        send(m.SetTags(key, {"dlx.fit_seconds": f"{history.seconds:.3f}"}))
        send(m.Figure(key, "learning_curves", (list(history),)))
        if scores.target is not None:
            send(m.Classification(key, scores.target, scores.pred, data.spec.class_names))
        y = data.test[1]
        if task == "regression":
            send(m.Figure(key, "predicted_vs_true", (scores.out[:, 0].cpu().numpy(),
                                                     y[:, 0].cpu().numpy())))
        if task == "reconstruction":
            send(m.Figure(key, "reconstructions", (data.test[0][:8].float().cpu().numpy(),
                                                   scores.out[:8].float().cpu().numpy())))
        if self.cfg.tracking.log_model:
            folder = models.save(model, self.output_dir / "model", self.cfg.model, data.spec,
                                 options["channels_last"])
            send(m.LogFiles(key, {"model": folder}))
            send(m.SetTags(key, {"dlx.weights": f"model/{models.WEIGHTS}"}))

    def end(self, status: str, error: BaseException | None = None) -> None:
        """FINISHED, FAILED or KILLED (from a `finally`: whatever happened, the run ends); a failed
        run keeps its one-line error as the tag ERROR_TAG (what a sweep reports for it)."""
        if self.writer and not self.ended and (self._id or self._reply):
            self.ended = True
            if error is not None and status == "FAILED":
                from dlx.errors import describe
                from dlx.tracking.redact import redact

                self.writer.send(m.SetTags(self.key, {ERROR_TAG: redact(describe(error))[:5000]}))
            self.writer.send(m.EndRun(self.key, status, _ms()))

