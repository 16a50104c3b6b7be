# hydra/launcher=ray: dlx's launcher on a Ray cluster, thin over dlx/sweep/ray_launcher.py.
# (No `from __future__ import annotations`: Hydra's plugin scan executes this module early.)
from dataclasses import dataclass
from typing import Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.plugins.launcher import Launcher


@dataclass
class RayLauncherConf:
    _target_: str = "hydra_plugins.dlx_sweeps.ray_launcher.RayLauncher"
    address: Optional[str] = None  # host:port of `ray start --head`; null: Ray's own rule
    #   (RAY_ADDRESS, else the cluster started on this machine, else a new local one)
    num_cpus: float = 1  # per task (a group of points that share a training)
    num_gpus: Optional[float] = None  # per task; null: 1 for trainer.device=cuda, and for auto
    #   on a cluster with GPUs, else 0
    share_prefixes: bool = True  # points that differ only in trainer.epochs are one task
    fuse: str = "auto"  # as dlx's launcher: points that differ only in optimizer.lr are one task,
    #   trained stacked where it pays (auto: CUDA) | true | false


ConfigStore.instance().store(group="hydra/launcher", name="ray", node=RayLauncherConf,
                             provider="dlx")


class RayLauncher(Launcher):
    """Each group of a sweep's points a Ray task (dlx/sweep/ray_launcher.py)."""

    def __init__(self, address: Optional[str] = None, num_cpus: float = 1,
                 num_gpus: Optional[float] = None, share_prefixes: bool = True,
                 fuse: str = "auto") -> None:
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus
        self.share_prefixes, self.fuse = share_prefixes, fuse
        self.config: Optional[object] = None
        self.hydra_context = None
        self.task_function = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        from dlx.sweep.launcher import compose_once

        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config
        compose_once(hydra_context)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int):
        from dlx.sweep import ray_launcher

        return ray_launcher.launch(self.hydra_context, self.task_function, self.config,
                                   job_overrides, initial_job_idx, self.address, self.num_cpus,
                                   self.num_gpus, self.share_prefixes, self.fuse)
