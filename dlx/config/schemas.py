"""Config group -> option -> schema: the one registry of what conf/ may select."""

from __future__ import annotations

from importlib import resources
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
# the YAML tree Hydra composes: conf/, installed as the package dlx.conf (pyproject.toml)
CONF_DIR = Path(str(resources.files("dlx.conf")))


def path_keys() -> set[str]:
    """The keys that hold a file or folder (fields declared with fields.path), and Hydra's own."""
    import dataclasses

    keys = {"hydra.run.dir", "hydra.sweep.dir"}
    for group, options in SCHEMAS.items():
        for schema in options.values():
            keys |= {f"{group}.{f.name}" for f in dataclasses.fields(schema) if f.metadata.get("path")}
    return keys
