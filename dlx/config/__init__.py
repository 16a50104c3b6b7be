"""The config schemas, one module per conf/ group, and `validate`.

Every default lives in a schema field here (the YAML options in conf/<group>/ only select a
schema: `defaults: [/<group>_<option>_schema@_here_]`), every allowed value and range check on
its field (dlx/config/fields.py), and every rule that spans settings in dlx/config/validate.py,
so `dlx config show` refuses exactly what `dlx train` refuses. No torch import here.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlx.config.schemas import CONF_DIR, SCHEMAS
from dlx.config.validate import check_monitor, task_of, validate


def register() -> None:
    """Put every schema in Hydra's ConfigStore as `<group>_<name>_schema`: a top-level name, not
    a group, so `dlx train --help` lists only the YAML options."""
    from hydra.core.config_store import ConfigStore

    OmegaConf.register_new_resolver(
        "dlx_direction", lambda mode: "minimize" if mode == "min" else "maximize", replace=True
    )
    cs = ConfigStore.instance()
    for group, options in SCHEMAS.items():
        for name, schema in options.items():
            node = OmegaConf.structured(schema)
            if getattr(schema, "OPEN", False):  # model=custom, dataset=custom: other keys are
                OmegaConf.set_struct(node, False)  # the target's arguments, from YAML or CLI
            cs.store(name=f"{group}_{name}_schema", node=node)


def flatten(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as `group.key -> value`, the way runs record their params."""
    out: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out[prefix] = node

    walk("", OmegaConf.to_container(cfg, resolve=True))
    return out


def compose(overrides=(), output_dir=None):
    """(cfg, runtime) of `dlx train OVERRIDES` (dlx/config/composing.py)."""
    from dlx.config.composing import compose as run

    return run(overrides, output_dir)


__all__ = ["CONF_DIR", "SCHEMAS", "register", "validate", "flatten", "check_monitor", "task_of",
           "compose"]
