"""`validate(cfg)`: every problem of a composed config, reported at once with its key path.

Three kinds of check, each in one place:
- keys: groups removed with `~group`, and keys no schema has (`+trainer.epochz=3`);
- fields: the check each schema field declares (dlx/config/fields.py), e.g. `lr > 0`;
- combinations: settings that are fine alone but not together (COMBINATIONS below).
It runs before torch or mlflow is imported, in `dlx train` and in `dlx config show` alike.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from dlx.config.fields import check_of, problems_of
from dlx.config import targets
from dlx.config.schemas import REQUIRED, SCHEMAS
from dlx.errors import ConfigError
from dlx.runtime import world_size as _ranks
from dlx.tasks import metric_names



def validate(cfg: DictConfig) -> None:
    """Raise one ConfigError listing every problem of `cfg` (Hydra has checked types already)."""
    problems: list[str] = []
    nodes = _check_keys(cfg, problems)
    values = {group: {} for group in SCHEMAS}  # an optional group left out: nothing selected
    values.update({g: OmegaConf.to_container(cfg[g], resolve=True) for g in SCHEMAS
                   if OmegaConf.is_dict(cfg.get(g))})
    for path, node in nodes:
        _check_fields(path, node, _select(values, path), problems)
    for group in targets.KINDS:  # a `_target_` not dlx's own: the trust rule, its arguments
        if isinstance(values.get(group), dict) and "_target_" in values[group]:
            problems += targets.check(group, values[group])
    if not problems:  # combinations read values that the checks above have passed
        view = _View(values)
        problems += [p for rule in COMBINATIONS for p in [rule(view, cfg)] if p]
    if problems:
        raise ConfigError("invalid config: " + "; ".join(problems))


# ------------------------------------------------------------------------------------ keys
def _check_keys(cfg: DictConfig, problems: list[str]) -> list[tuple[str, DictConfig]]:
    """Unknown groups and keys; returns (path, node) of every group option to check."""
    for key in cfg:
        if key not in SCHEMAS and key != "hydra":  # hydra: Hydra's own node, when composed with it
            problems.append(f"{key} is not a config group (groups: {', '.join(SCHEMAS)}): "
                            f"drop +{key}=... or fix its spelling")
    for group in REQUIRED:
        if cfg.get(group) is None:
            problems.append(f"{group} is missing (removed with ~{group}?): pick one with "
                            f"{group}=<option> (`dlx config list` shows them)")
    nodes = [(group, cfg.get(group)) for group in SCHEMAS if group != "regularizer"]
    regularizers = cfg.get("regularizer")
    if OmegaConf.is_dict(regularizers):
        for name in regularizers:
            if name not in SCHEMAS["regularizer"]:
                problems.append(f"regularizer.{name} is not a regularizer (options: "
                                f"{', '.join(SCHEMAS['regularizer'])})")
            nodes.append((f"regularizer.{name}", regularizers.get(name)))
    found = []
    for path, node in nodes:
        schema = schema_of(node)
        if schema is None:
            continue
        found.append((path, node))
        if _foreign(schema, node):  # the other keys are its target's: checked against it
            continue
        known = [f.name for f in dataclasses.fields(schema) if not f.name.startswith("_")]
        for key in node:
            if key not in known and not str(key).startswith("_"):
                problems.append(f"{path}.{key} is not an option of the {path} config (options: "
                                f"{', '.join(known)}): fix its spelling, without a leading +")
    return found


def _foreign(schema, node: DictConfig) -> bool:
    """Whether a node's keys beyond its schema's go to a `_target_` that is not dlx's own (a
    custom option, or a user's class named over a built-in option)."""
    if getattr(schema, "OPEN", False):
        return True
    return "_target_" in node and not OmegaConf.is_missing(node, "_target_") \
        and not targets.is_builtin(node._target_)


def schema_of(node: Any):
    schema = OmegaConf.get_type(node) if OmegaConf.is_dict(node) else None
    return schema if schema is not None and dataclasses.is_dataclass(schema) else None


def _select(values: dict, path: str) -> dict:
    for part in path.split("."):
        values = values[part]
    return values


# ---------------------------------------------------------------------------------- fields
def _check_fields(path: str, node: DictConfig, values: dict, problems: list[str]) -> None:
    for f in dataclasses.fields(schema_of(node)):
        value = values.get(f.name)
        problem = problems_of(value, check_of(f))
        if problem:
            problems.append(f"{path}.{f.name}={value} {problem}")


# ---------------------------------------------------------------------------- combinations
class _View:
    """The resolved config as attributes, None for what is not there: `c.scheduler.name`."""

    def __init__(self, values: Any):
        self._values = values

    def __getattr__(self, name: str):
        value = self._values.get(name) if isinstance(self._values, dict) else None
        return _View(value) if isinstance(value, dict) else value

    def __contains__(self, name: str) -> bool:
        return isinstance(self._values, dict) and name in self._values


def task_of(cfg: DictConfig) -> str | None:
    """What the config asks of a model, when known before reading data: regression | binary |
    multiclass | reconstruction | classification (a CSV's: binary or multiclass); None: a CSV
    with task=auto, decided by its data."""
    model, data = (schema_of(cfg.get(g)) for g in ("model", "dataset"))
    if model is not None and model.RECONSTRUCTS:
        return "reconstruction"
    if data is None:
        return None
    return data.TASK if data.TASK or cfg.dataset.get("task") == "auto" else cfg.dataset.task


def check_monitor(cfg: DictConfig, task: str) -> list[str]:
    """trainer.monitor (and the early-stopping and plateau monitors) must be metrics that a
    `task` run logs on its validation split."""
    names = [f"val_{m}" for m in metric_names(task)]
    out = []
    for key in ("trainer.monitor", "regularizer.early_stopping.monitor", "scheduler.monitor"):
        value = OmegaConf.select(cfg, key)
        if value is not None and value not in names:
            out.append(f"{key}={value} is not logged for a {task} task: use one of "
                       f"{', '.join(names)}")
    return out


def no_dropout_sites(target: str) -> str:
    """regularizer=[dropout] on a network without nn.Dropout modules (known from its schema, or
    for a network of the user's, found when it is built)."""
    return (f"regularizer=[dropout] but {target.rsplit('.', 1)[-1]} has no dropout sites "
            "(nn.Dropout): drop it from regularizer or pick a model that has them (e.g. model=mlp)")


def _has_val(c: _View) -> bool:
    """Whether the fit that watches a validation metric has a validation split: not with
    dataset.val_fraction=0, nor in the refit on all of train+val after cross-validation."""
    refit = (c.trainer.cv_folds or 0) > 1 and c.trainer.cv_refit != "none"
    return c.dataset.val_fraction > 0 and not refit


def _no_val_split(what: str):
    def rule(c: _View, cfg) -> str | None:
        picked = c.scheduler.name == "plateau" if what == "scheduler=plateau" \
            else "early_stopping" in c.regularizer
        if not picked or _has_val(c):
            return None
        if c.dataset.val_fraction == 0:
            return f"{what} watches a validation metric: set dataset.val_fraction > 0"
        return (f"{what} has no validation split to watch in the refit on all of train+val after "
                "cross-validation: set trainer.cv_refit=none (scores only) or drop it")
    return rule


def _monitor(c: _View, cfg) -> str | None:
    task = task_of(cfg)
    return "; ".join(check_monitor(cfg, task)) or None if task else None


Rule = Callable[[_View, DictConfig], "str | None"]
COMBINATIONS: list[Rule] = [
    lambda c, _: None if not c.optimizer.nesterov or (c.optimizer.momentum or 0) > 0 else (
        "optimizer.nesterov=true needs optimizer.momentum > 0 (Nesterov momentum is a kind of "
        "momentum): set optimizer.momentum=0.9 or optimizer.nesterov=false"),
    lambda c, _: None if not (c.model.batchnorm and c.dataset.batch_size == 1) else (
        "model.batchnorm=true needs dataset.batch_size >= 2 (batch norm normalizes over the rows "
        "of a batch): raise dataset.batch_size or set model.batchnorm=false"),
    lambda c, _: None if not (c.trainer.strategy == "ddp" and c.trainer.cv_folds > 1) else (
        "trainer.strategy=ddp trains one fit, not a cross-validation: set trainer.cv_folds=0 or "
        "run it in one process (trainer.strategy=single)"),
    lambda c, _: None if not (c.trainer.strategy != "single" and _ranks() > c.dataset.batch_size)
    else (f"dataset.batch_size={c.dataset.batch_size} is split over {_ranks()} DDP ranks: use "
          f"dataset.batch_size >= {_ranks()}"),
    lambda c, _: None if not (c.trainer.resume and c.trainer.cv_folds > 1) else (
        "trainer.resume continues one fit, not a cross-validation: drop trainer.resume or set "
        "trainer.cv_folds=0"),
    lambda c, _: None if not (c.trainer.device == "cpu" and c.trainer.precision == "fp16") else (
        "trainer.precision=fp16 needs a CUDA device (this run is on cpu): use "
        "trainer.precision=bf16 or fp32"),
    lambda c, _: None if not (c.trainer.device == "cpu" and str(c.trainer.capture).lower() == "true") else (
        "trainer.capture=true records CUDA graphs, and this run is on cpu: use trainer.capture=auto "
        "(or trainer.compile=true to compile on a CPU)"),
    _no_val_split("regularizer=[early_stopping]"),
    _no_val_split("scheduler=plateau"),
    lambda c, _: None if not (c.scheduler.name == "cosine"
                              and c.scheduler.warmup_epochs >= c.trainer.epochs) else (
        f"scheduler.warmup_epochs={c.scheduler.warmup_epochs} leaves no epoch to decay in "
        f"trainer.epochs={c.trainer.epochs}: use fewer warmup epochs"),
    lambda c, _: None if not ("l2" in c.regularizer and c.regularizer.l2.decoupled
                              and c.optimizer._target_ != "torch.optim.AdamW") else (
        f"regularizer.l2.decoupled=true is decoupled weight decay, which {c.optimizer._target_} "
        "does not do: use optimizer=adamw, or regularizer.l2.decoupled=false (a loss penalty)"),
    lambda c, cfg: None if not ("dropout" in c.regularizer
                                and not getattr(schema_of(cfg.model), "DROPOUT", True)) else (
        no_dropout_sites(c.model._target_)),
    _monitor,
    lambda c, _: None if not (c.dataset.name == "synthetic_linear"
                              and c.dataset.x_max <= c.dataset.x_min) else (
        f"dataset.x_max={c.dataset.x_max} must be above dataset.x_min={c.dataset.x_min}"),
    lambda c, _: None if not (c.dataset.name == "synthetic_sequence"
                              and c.dataset.min_length > c.dataset.length) else (
        f"dataset.min_length={c.dataset.min_length} exceeds dataset.length={c.dataset.length}: "
        "lower min_length (0 = every sequence full length)"),
    lambda c, _: None if not (c.model.d_model and c.model.d_model % c.model.num_heads) else (
        f"model.num_heads={c.model.num_heads} must divide model.d_model={c.model.d_model} (each "
        "head gets d_model/num_heads dimensions)"),
    lambda c, _: None if not (c.model._target_ == "dlx.models.autoencoder.ConvAutoencoder"
                              and c.model.kernel_size % 2 == 0) else (
        f"model.kernel_size={c.model.kernel_size} must be odd, so convs keep the size"),
]
