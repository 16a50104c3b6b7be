# dlx's Optuna sweeper (sweep=optuna), thin over dlx/sweep/optuna_study.py. (No
# `from __future__ import annotations`: Hydra's plugin scan executes this module early.)
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper


@dataclass
class DlxOptunaSweeperConf:
    _target_: str = "hydra_plugins.dlx_sweeps.optuna.DlxOptunaSweeper"
    sampler: Any = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler"})
    pruner: Any = None  # e.g. {_target_: optuna.pruners.MedianPruner}; null: no pruning
    direction: str = "minimize"  # minimize | maximize
    study_name: str = "dlx"
    # null: a journal file in the sweep dir; or an RDB URL (postgresql+psycopg://..., sqlite:///...)
    # that workers on several machines share (docs/cluster.md#optuna-across-machines)
    storage: Optional[str] = None
    load_if_exists: bool = True  # false: refuse a study_name that the storage already holds
    heartbeat_interval: int = 10  # RDB storage: seconds between a running trial's heartbeats;
    grace_period: Optional[int] = None  # a trial silent this long (default 2x) fails, and is retried
    n_trials: int = 20  # with a storage: the study's trials in all, whichever worker runs them
    n_jobs: int = 1  # trials launched together (parallel with hydra/launcher=joblib)
    params: Dict[str, str] = field(default_factory=dict)  # the search space (Hydra's sweep syntax)
    trial: Optional[int] = None  # set per job by the sweeper: its trial number


ConfigStore.instance().store(group="hydra/sweeper", name="dlx_optuna", node=DlxOptunaSweeperConf,
                             provider="dlx")


class DlxOptunaSweeper(Sweeper):
    def __init__(self, sampler: Any, pruner: Any, direction: str, study_name: str,
                 storage: Optional[str], n_trials: int, n_jobs: int,
                 params: Optional[Dict[str, str]] = None, trial: Optional[int] = None,
                 load_if_exists: bool = True, heartbeat_interval: int = 10,
                 grace_period: Optional[int] = None) -> None:
        self.sampler, self.pruner = sampler, pruner  # instantiated by Hydra already
        self.direction, self.study_name, self.storage = direction, study_name, storage
        self.load_if_exists = load_if_exists
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.params = dict(params or {})
        self.config: Any = None
        self.launcher: Any = None
        self.session: Any = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        from hydra.core.plugins import Plugins

        from dlx.sweep.session import session_of

        self.config, self.session = config, session_of(task_function)
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        from dlx.sweep import optuna_study

        return optuna_study.sweep(self, list(arguments))
