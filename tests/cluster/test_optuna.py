"""Optuna across machines: `sweep=optuna` on a study in PostgreSQL (Optuna's RDB storage) that
several `dlx train -m` workers share. The study counts n_trials in all; each trial is one MLflow
child run under the study's one parent; a worker that dies stops beating, its trial is failed
and tried again by another worker."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from dlx.tracking import PARENT_TAG

pytestmark = pytest.mark.cluster

SPACE = ("hydra.sweeper.params={optimizer.lr:'choice(0.003,0.01,0.03,0.1)',"
         "dataset.batch_size:'choice(32,64,128)'}")


def _worker(team, storage: str, study: str, n_trials: int, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dlx", "train", "-m", "sweep=optuna", "model=mlp",
         "trainer.device=cpu", "trainer.progress=false", "tracking.log_model=false",
         *team.overrides, SPACE, f"hydra.sweeper.storage={storage}",
         f"hydra.sweeper.study_name={study}", f"hydra.sweeper.n_trials={n_trials}",
         "hydra.sweeper.pruner=null", "hydra.sweeper.heartbeat_interval=1",
         "hydra.sweeper.grace_period=6", *overrides],
        cwd=team.cwd, env=team.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)


def _study(storage: str, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=storage)


def _records(team):
    runs = team.runs()
    parents = [r for r in runs if PARENT_TAG not in r.data.tags]
    children = [r for r in runs if PARENT_TAG in r.data.tags]
    return parents, children


def test_three_workers_share_one_study_of_twelve_trials(team, postgres):
    from optuna.trial import TrialState

    storage = postgres.create_database("optuna_three")
    began = time.time()
    workers = [_worker(team, storage, "three", 12, "trainer.epochs=1") for _ in range(3)]
    outs = [w.communicate(timeout=600) for w in workers]
    seconds = time.time() - began
    assert [w.returncode for w in workers] == [0, 0, 0], [o[1][-2000:] for o in outs]

    trials = _study(storage, "three").get_trials()
    assert len(trials) == 12 and all(t.state == TrialState.COMPLETE for t in trials)
    parents, children = _records(team)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"  # one parent per study
    assert len(children) == 12 and all(r.info.status == "FINISHED" for r in children)
    assert {r.data.tags[PARENT_TAG] for r in children} == {parents[0].info.run_id}
    # each trial trained once: one run per trial number, every worker took some
    dirs = sorted(r.data.tags["dlx.output_dir"] for r in children)
    assert len(set(dirs)) == 12
    assert sum("point " in o[0] for o in outs) == 3, [o[0] for o in outs]
    assert parents[0].data.tags["dlx.best_run_id"] in {r.info.run_id for r in children}
    print(f"\n3 workers, 1 study: trials finished {len(trials)}/12, runs recorded "
          f"{len(children)}/12 under 1 parent, {seconds:.0f} s")


def test_a_worker_killed_mid_trial_leaves_the_study_to_the_others(team, postgres):
    from optuna.trial import TrialState

    storage = postgres.create_database("optuna_kill")
    slow = ("model.hidden_sizes=[512,512]", "dataset=synthetic_logistic",
            "dataset.n_samples=4000", "trainer.epochs=3")
    victim = _worker(team, storage, "kill", 6, *slow)
    deadline = time.time() + 120  # wait until the victim trains its first trial, recorded
    while time.time() < deadline and not any(r.info.status == "RUNNING" for r in _records(team)[1]):
        time.sleep(0.2)
    others = [_worker(team, storage, "kill", 6, *slow) for _ in range(2)]
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    outs = [w.communicate(timeout=600) for w in others]
    assert [w.returncode for w in others] == [0, 0], [o[1][-2000:] for o in outs]

    trials = _study(storage, "kill").get_trials()
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == 6, states
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1  # the killed worker's trial, failed by its silence ...
    retry = [t for t in trials if failed[0].number in t.system_attrs.get("retry_history", ())]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE  # ... and run again
    assert retry[0].params == failed[0].params

    deadline = time.time() + 60  # the killed trainer's tracking writer ends its run KILLED
    while time.time() < deadline and any(r.info.status == "RUNNING" for r in team.runs()):
        time.sleep(0.5)
    parents, children = _records(team)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    status = sorted(r.info.status for r in children)
    assert status == ["FINISHED"] * 6 + ["KILLED"], status
    print(f"\nkilled worker: trials {states.count(TrialState.COMPLETE)} complete + 1 failed "
          f"and retried; runs {status.count('FINISHED')} FINISHED + 1 KILLED under 1 parent")
