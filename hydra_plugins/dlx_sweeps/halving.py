# dlx's successive-halving sweeper (sweep=halving), thin over dlx/sweep/halving.py. (No
# `from __future__ import annotations`: Hydra's plugin scan executes this module early.)
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper


@dataclass
class DlxHalvingSweeperConf:
    _target_: str = "hydra_plugins.dlx_sweeps.halving.DlxHalvingSweeper"
    factor: int = 3  # each rung keeps the best 1/factor of its candidates
    min_resources: int = 10  # epochs every candidate trains
    max_resources: int = 30  # the most epochs a candidate gets
    params: Dict[str, str] = field(default_factory=dict)  # the grid, as for sweep=grid
    rung: Optional[int] = None  # set per job by the sweeper: the rung it runs


ConfigStore.instance().store(group="hydra/sweeper", name="dlx_halving", node=DlxHalvingSweeperConf,
                             provider="dlx")


class DlxHalvingSweeper(Sweeper):
    def __init__(self, factor: int, min_resources: int, max_resources: int,
                 params: Optional[Dict[str, str]] = None, rung: Optional[int] = None) -> None:
        self.factor, self.min_resources, self.max_resources = factor, min_resources, max_resources
        self.params = dict(params or {})
        self.hydra_context: Any = None
        self.config: Any = None
        self.launcher: Any = None
        self.session: Any = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        from hydra.core.plugins import Plugins

        from dlx.sweep.session import session_of

        self.hydra_context, self.config = hydra_context, config
        self.session = session_of(task_function)
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        from dlx.sweep import halving

        return halving.sweep(self.launcher, self.hydra_context, self.config, self.params,
                             list(arguments), self.factor, self.min_resources, self.max_resources,
                             self.session)
