# dlx's Hydra plugins live here because Hydra loads plugins only from the hydra_plugins
# package; each is a thin class over its engine in dlx/sweep/. (No `from __future__ import
# annotations`: Hydra's plugin scan executes this module before registering it.)
from dataclasses import dataclass
from typing import Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.plugins.launcher import Launcher


@dataclass
class DlxLauncherConf:
    _target_: str = "hydra_plugins.dlx_sweeps.launcher.DlxLauncher"
    share_prefixes: bool = True  # points that differ only in trainer.epochs train once
    fuse: str = "auto"  # points that differ only in optimizer.lr train stacked: auto (CUDA, when a
    #   probe shows a gain) | true | false


ConfigStore.instance().store(group="hydra/launcher", name="dlx", node=DlxLauncherConf,
                             provider="dlx")


class DlxLauncher(Launcher):
    """The jobs in this process, one after the other, sharing epoch prefixes (dlx/sweep/)."""

    def __init__(self, share_prefixes: bool = True, fuse: str = "auto") -> None:
        self.share_prefixes, self.fuse = share_prefixes, fuse
        self.config: Optional[object] = None
        self.hydra_context = None
        self.task_function = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        from dlx.sweep.launcher import compose_once

        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config
        compose_once(hydra_context)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int):
        from dlx.sweep import launcher

        return launcher.launch(self.hydra_context, self.task_function, self.config, job_overrides,
                               initial_job_idx, self.share_prefixes, self.fuse)
