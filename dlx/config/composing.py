"""`compose(overrides)`: the config and runtime of `dlx train OVERRIDES` without the command line."""

from __future__ import annotations

from pathlib import Path


def compose(overrides: list[str] = (), output_dir: str | Path | None = None):
    """(cfg, runtime) of `dlx train OVERRIDES` without the command line: the same conf/ tree and
    schemas, composed with Hydra's compose API, the run dir as the CLI would name it (under the
    working directory) unless `output_dir` is given, and created. What tests and benchmarks
    hand to `dlx.run.train`; the config is not validated here (`dlx.config.validate`)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    from dlx.config import register
    from dlx.config.schemas import CONF_DIR
    from dlx.runtime import Runtime

    register()
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = hydra_compose("config", overrides=list(overrides), return_hydra_config=True)
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
