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
import time
import warnings
from typing import Any

from dlx.training.callbacks import Callback

PRUNED = "dlx_pruned_epoch"  # the trial's user attribute a pruned job leaves for the sweeper
RETRIES = 3  # times a trial whose worker went silent is tried again


def open_storage(storage: str | None, sweep_dir: str, heartbeat_interval: int | None = None,
                 grace_period: int | None = None):
    """The study's storage, the same for the sweeper and every job (any process). An RDB URL
    with `heartbeat_interval` (the sweeper's): a trial whose worker stops beating for
    `grace_period` seconds is failed by the next worker that looks, and tried again."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    from dlx.errors import ConfigError

    if storage is None or storage.endswith(".journal"):
        path = storage or os.path.join(sweep_dir, "optuna.journal")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return JournalStorage(JournalFileBackend(path))
    beats = {} if heartbeat_interval is None else {
        "heartbeat_interval": heartbeat_interval, "grace_period": grace_period,
        "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=RETRIES)}
    for attempt in range(3):  # workers that start at once on a new database each create the
        try:                  # schema: the losers of that race try again
            return optuna.storages.RDBStorage(storage, **beats)
        except ModuleNotFoundError as e:  # SQLAlchemy's driver for that URL
            fix = " (pip install 'dlx[postgres]')" if storage.startswith("postgresql") else ""
            raise ConfigError(f"hydra.sweeper.storage={_redact(storage)} needs the Python module "
                              f"{e.name}{fix}") from e
        except Exception as e:  # noqa: BLE001 - SQLAlchemy's errors: the user's URL or server
            failure = e
            time.sleep(0.5 * 2**attempt)
    text = _redact(" ".join(str(failure).split()))[:300]
    raise ConfigError(f"cannot open the Optuna storage hydra.sweeper.storage={_redact(storage)}: "
                      f"{text} (is the database server running? check the URL)") from failure


def _redact(text: str) -> str:
    from dlx.tracking.redact import redact

    return redact(text)


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
    from optuna.storages._heartbeat import get_heartbeat_thread
    from optuna.trial import TrialState

    from dlx.tracking.ranking import is_worst

    session = sweeper.session
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # dlx prints the points itself
    # dlx asks and tells (it launches the trials through Hydra) and beats the heartbeat itself
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    params = {**sweeper.params, **dict(a.split("=", 1) for a in arguments)}  # command line wins
    dists, fixed = distributions(params)
    session.progress.expect(sweeper.n_trials)
    session.progress.swept = set(dists)
    storage = open_storage(sweeper.storage, sweeper.config.hydra.sweep.dir,
                           sweeper.heartbeat_interval, sweeper.grace_period)
    study = _study(sweeper, storage)
    returns, job = [], 0
    while size := _batch(study, sweeper.n_trials, sweeper.n_jobs):
        trials = [study.ask(fixed_distributions=dists) for _ in range(size)]
        batch = [[*(f"{k}={v}" for k, v in {**t.params, **fixed}.items()),
                  f"hydra.sweeper.trial={t.number}"] for t in trials]
        beats = [get_heartbeat_thread(t._trial_id, storage) for t in trials]
        for b in beats:  # this worker is alive while its trials train (RDB storage)
            b.start()
        try:
            results = sweeper.launcher.launch(batch, initial_job_idx=job)
        except BaseException:  # Ctrl-C: the asked trials did not run
            for t in trials:
                study.tell(t, state=TrialState.FAIL, skip_if_finished=True)
            raise
        finally:
            for b in beats:
                b.join()
        job += len(batch)
        returns.append(results)
        for t, r in zip(trials, results):
            value = r._return_value if r.status == JobStatus.COMPLETED else None
            if PRUNED in storage.get_trial(t._trial_id).user_attrs:
                study.tell(t, state=TrialState.PRUNED, skip_if_finished=True)
            elif isinstance(value, (int, float)) and math.isfinite(value) \
                    and not is_worst(value):  # dlx's worst: a failed job
                study.tell(t, value, skip_if_finished=True)
            else:
                study.tell(t, state=TrialState.FAIL, skip_if_finished=True)
    return returns


PARENT_ATTR = "dlx.parent_run_id"  # the study's one MLflow parent run, for all its workers


def _study(sweeper, storage):
    """Create the study, or load it (another worker, or an earlier sweep, created it). On a
    storage of the user's, the worker that created the study starts its MLflow parent run and
    writes its id into the study; the others take that parent up."""
    import optuna

    from dlx.errors import ConfigError
    from dlx.sweep.session import shared_study

    def load():
        return optuna.load_study(study_name=sweeper.study_name, storage=storage,
                                 sampler=sweeper.sampler, pruner=sweeper.pruner or optuna.pruners.NopPruner())

    try:
        study = optuna.create_study(study_name=sweeper.study_name, storage=storage,
                                    sampler=sweeper.sampler,
                                    pruner=sweeper.pruner or optuna.pruners.NopPruner(),
                                    direction=sweeper.direction)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        if not sweeper.load_if_exists:
            raise ConfigError(f"hydra.sweeper.study_name={sweeper.study_name} exists already in "
                              f"{_redact(str(sweeper.storage))}: pass another study_name, or "
                              "hydra.sweeper.load_if_exists=true to continue it") from None
        study, created = load(), False
    if study.direction.name.lower() != sweeper.direction:
        raise ConfigError(f"study {sweeper.study_name} is to {study.direction.name.lower()}, not to "
                          f"{sweeper.direction}: pass another hydra.sweeper.study_name")
    config, session = sweeper.config, sweeper.session
    if not shared_study(config) or not config.tracking.enabled:
        return study
    if created or PARENT_ATTR in study.user_attrs:
        parent = study.user_attrs.get(PARENT_ATTR)
        parent = session.start_parent(parent)
        study.set_user_attr(PARENT_ATTR, parent)
        return study
    deadline = time.monotonic() + 120  # the creator is starting the parent run
    while PARENT_ATTR not in study.user_attrs:
        if time.monotonic() > deadline:
            raise ConfigError(f"study {sweeper.study_name} has no MLflow parent run after 120 s: "
                              "its first worker stopped while starting; pass another "
                              "hydra.sweeper.study_name")
        time.sleep(0.5)
        study = load()
    session.start_parent(study.user_attrs[PARENT_ATTR])
    return study


POLL = 2.0  # seconds between looks at a study whose last trials run in other workers


def _batch(study, n_trials: int, n_jobs: int) -> int:
    """How many trials to ask for next: up to n_jobs of what the study still needs to reach
    n_trials (finished, pruned or failed for good, whichever worker ran them). While the last
    ones run elsewhere, wait: a worker that dies fails its trial, and it is retried here."""
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    while True:
        fail_stale_trials(study)  # a silent worker's trials: FAIL, and a retry WAITING
        trials = study.get_trials(deepcopy=False)
        retried = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
        done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                   or (t.state == TrialState.FAIL and t.number not in retried) for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        wanted = max(waiting, n_trials - done - running)
        if wanted > 0:
            return min(n_jobs, wanted)
        if running == 0:
            return 0
        time.sleep(POLL)


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


class Pruning(Callback):
    """A fit callback: the monitored metric to the trial every epoch; stops a pruned trial, whose
    run is then tagged dlx.pruned and dlx.pruned_epoch."""

    def __init__(self, trial, monitor: str):
        self.trial, self.monitor = trial, monitor
        self.pruned_epoch: int | None = None

    def end_tags(self) -> dict[str, str]:
        if self.pruned_epoch is None:
            return {}
        return {"dlx.pruned": "true", "dlx.pruned_epoch": str(self.pruned_epoch)}

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
