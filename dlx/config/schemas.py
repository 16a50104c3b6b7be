"""Config group -> option -> schema: the one registry of what conf/ may select."""

from __future__ import annotations

from pathlib import Path

from dlx.config import dataset, model, optimizer, regularizer, scheduler, tracking, trainer

SCHEMAS = {
    "model": model.OPTIONS,
    "optimizer": optimizer.OPTIONS,
    "dataset": dataset.OPTIONS,
    "regularizer": regularizer.OPTIONS,
    "scheduler": scheduler.OPTIONS,
    "trainer": trainer.OPTIONS,
    "tracking": tracking.OPTIONS,
}
REQUIRED = ("model", "optimizer", "dataset", "trainer", "tracking")  # regularizer, scheduler: optional
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"  # the YAML tree Hydra composes
