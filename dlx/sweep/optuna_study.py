"""`sweep=optuna`: an Optuna study over Hydra's launcher, with pruning.

The sweeper (hydra_plugins/dlx_sweeps/optuna.py) asks the study for trials (TPE by default),
launches them as Hydra jobs (each is told its trial number through `hydra.sweeper.trial`), and
tells the study each job's objective. In the job, `Pruning` (a fit callback) reports the
monitored validation metric after every epoch and asks the pruner (median, Hyperband, ...)
whether to go on; a pruned trial stops training there, ends its MLflow run FINISHED with the
tags dlx.pruned=true and dlx.pruned_epoch, and the sweeper tells the study it was pruned.
Sweeper and jobs share one storage: a journal file in the sweep dir by default (jobs of the
joblib launcher run in other processes), or any Optuna storage URL (sqlite:///...).
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any

PRUNED = "dlx_pruned_epoch"  # the trial's user attribute a pruned job leaves for the sweeper


def open_storage(storage: str | None, sweep_dir: str):
    """The study's storage, the same for the sweeper and every job (any process)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if storage is None or storage.endswith(".journal"):
        path = storage or os.path.join(sweep_dir, "optuna.journal")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return JournalStorage(JournalFileBackend(path))
    return optuna.storages.RDBStorage(storage)


def distributions(params: dict[str, str]):
    """hydra.sweeper.params in Hydra's sweep syntax -> (Optuna distributions, fixed values):
    choice(a, b) and range(...) -> categorical/int/float steps; interval(lo, hi), with
    tag(log, ...) for a log scale -> float (int(interval(...)) -> int)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep, Transformer
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from dlx.errors import ConfigError

    dists, fixed = {}, {}
    for o in OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()]):
        key, v = o.get_key_element(), o.value()
        if not o.is_sweep_override():
            fixed[key] = o.get_value_element_as_str()
        elif isinstance(v, ChoiceSweep) or (isinstance(v, RangeSweep) and v.shuffle):
            dists[key] = CategoricalDistribution(list(o.sweep_iterator(transformer=Transformer.encode)))
        elif isinstance(v, RangeSweep):
            if any(isinstance(x, float) for x in (v.start, v.stop, v.step)):
                dists[key] = FloatDistribution(v.start, v.stop - v.step, step=v.step)
            else:
                dists[key] = IntDistribution(int(v.start), int(v.stop) - 1, step=int(v.step))
        elif isinstance(v, IntervalSweep):
            log = "log" in v.tags
            if isinstance(v.start, int) and isinstance(v.end, int):
                dists[key] = IntDistribution(v.start, v.end, log=log)
            else:
                dists[key] = FloatDistribution(float(v.start), float(v.end), log=log)
        else:
            raise ConfigError(f"sweep=optuna cannot search {key}={params[key]}: use choice(...), "
                              "range(...) or interval(...) (tag(log, interval(...)) for a log scale)")
    return dists, fixed


def sweep(sweeper, arguments: list[str]):
    """Ask, launch, tell: `sweeper` is the Hydra plugin, with its settings and launcher."""
    import optuna
    from hydra.core.utils import JobStatus
    from optuna.trial import TrialState

    from dlx.sweep.launcher import progress

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # dlx prints the points itself
    params = {**sweeper.params, **dict(a.split("=", 1) for a in arguments)}  # command line wins
    dists, fixed = distributions(params)
    progress.expect(sweeper.n_trials)
    progress.swept = set(dists)
    storage = open_storage(sweeper.storage, sweeper.config.hydra.sweep.dir)
    study = optuna.create_study(study_name=sweeper.study_name, storage=storage,
                                sampler=sweeper.sampler, pruner=sweeper.pruner or optuna.pruners.NopPruner(),
                                direction=sweeper.direction, load_if_exists=True)
    returns, job, to_go = [], 0, sweeper.n_trials
    while to_go > 0:
        trials = [study.ask(fixed_distributions=dists) for _ in range(min(sweeper.n_jobs, to_go))]
        batch = [[*(f"{k}={v}" for k, v in {**t.params, **fixed}.items()),
                  f"hydra.sweeper.trial={t.number}"] for t in trials]
        try:
            results = sweeper.launcher.launch(batch, initial_job_idx=job)
        except BaseException:  # Ctrl-C: the asked trials did not run
            for t in trials:
                study.tell(t, state=TrialState.FAIL, skip_if_finished=True)
            raise
        job, to_go = job + len(batch), to_go - len(batch)
        returns.append(results)
        for t, r in zip(trials, results):
            value = r._return_value if r.status == JobStatus.COMPLETED else None
            if PRUNED in storage.get_trial(t._trial_id).user_attrs:
                study.tell(t, state=TrialState.PRUNED, skip_if_finished=True)
            elif isinstance(value, (int, float)) and math.isfinite(value) \
                    and abs(value) != sys.float_info.max:  # dlx's worst: a failed job
                study.tell(t, value, skip_if_finished=True)
            else:
                study.tell(t, state=TrialState.FAIL, skip_if_finished=True)
    return returns


def trial_of(trial):
    """The optuna.trial.Trial of a job's `dlx.runtime.Trial` (what the sweeper told the job)."""
    import optuna
    from hydra.utils import instantiate

    storage = open_storage(trial.storage, trial.sweep_dir)
    pruner = instantiate(trial.pruner) if trial.pruner else optuna.pruners.NopPruner()
    study = optuna.load_study(study_name=trial.study_name, storage=storage, pruner=pruner,
                              sampler=optuna.samplers.RandomSampler())  # the job never samples
    study_id = storage.get_study_id_from_name(trial.study_name)
    return optuna.trial.Trial(study, storage.get_trial_id_from_study_id_trial_number(
        study_id, trial.number))


class Pruning:
    """A fit callback: the monitored metric to the trial every epoch; stops a pruned trial."""

    def __init__(self, trial, monitor: str):
        self.trial, self.monitor = trial, monitor
        self.pruned_epoch: int | None = None

    def on_fit_start(self, loop) -> None: ...

    def on_epoch_start(self, epoch, epochs, steps) -> None: ...

    def on_batch_end(self, step) -> None: ...

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> bool:
        self.trial.report(metrics[self.monitor], epoch)
        if self.trial.should_prune():
            self.pruned_epoch = epoch
            self.trial.set_user_attr(PRUNED, epoch)
            return True
        return False


def pruning(trial, monitor: str) -> Any:
    """The Pruning callback of a job's trial (`dlx.runtime.Trial`), or None: not an Optuna trial."""
    return None if trial is None else Pruning(trial_of(trial), monitor)
