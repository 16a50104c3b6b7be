"""The config of `dlx train OVERRIDES`, composed without the command line (Hydra's compose API over
the same conf/ tree and schemas): what tests, benchmarks and config checks compose, in one place.

    composer()            a context: compose(*overrides) -> the config, many times in one Hydra
                          context (hydra=True keeps Hydra's node: runtime choices, run dir)
    compose_config(...)   one config
    compose(overrides)    (cfg, runtime) for dlx.run.train: the run dir as the CLI names it, made

The config is not validated here (`dlx.config.validate`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def composer() -> Iterator[Callable[..., object]]:
    """compose(*overrides, hydra=False) -> the composed config, inside one Hydra context."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from dlx.config import register
    from dlx.config.schemas import CONF_DIR

    register()
    GlobalHydra.instance().clear()  # (a context another caller left behind)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        yield lambda *overrides, hydra=False: hydra_compose(
            "config", overrides=list(overrides), return_hydra_config=hydra)


def compose_config(overrides=(), hydra: bool = False):
    """The config `dlx train OVERRIDES` runs; hydra=True keeps Hydra's node."""
    with composer() as compose_one:
        return compose_one(*overrides, hydra=hydra)


def compose(overrides=(), output_dir: str | Path | None = None):
    """(cfg, runtime) of `dlx train OVERRIDES` without the command line: the run dir as the CLI
    would name it (under the working directory) unless `output_dir` is given, and created. What
    tests and benchmarks hand to `dlx.run.train`."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    from dlx.runtime import Runtime

    cfg = compose_config(overrides, hydra=True)
    if output_dir is None:  # the run dir as Hydra names it (its ${now:...} and group choices)
        HydraConfig.instance().set_config(cfg)
        output_dir = HydraConfig.get().run.dir
        HydraConfig.instance().cfg = None  # nothing reads Hydra's globals: the runtime is passed
        OmegaConf.set_readonly(cfg.hydra, False)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(Path(output_dir).resolve())
    Path(cfg.hydra.runtime.output_dir).mkdir(parents=True, exist_ok=True)
    runtime = Runtime.of(cfg.hydra)
    with open_dict(cfg):  # as Hydra's run_job: the task sees its config without the hydra node
        del cfg["hydra"]
    return cfg, runtime
