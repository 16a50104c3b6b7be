"""A sweep's points as batch jobs through submitit (`hydra/launcher=submitit_local`: the same
submitit job machinery as `hydra/launcher=slurm`, on this machine): each job runs in its own
process, records into the team's server under the sweep's one parent run, and a job that fails
fails only its point."""

from __future__ import annotations

import pytest

from dlx.tracking import PARENT_TAG

pytestmark = pytest.mark.cluster

SMALL = ("model=logistic", "dataset=synthetic_logistic", "trainer.epochs=2")


def _parent_and_children(team):
    runs = team.runs()
    parents = [r for r in runs if PARENT_TAG not in r.data.tags]
    children = [r for r in runs if PARENT_TAG in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    assert {r.data.tags[PARENT_TAG] for r in children} == {parents[0].info.run_id}
    return parents[0], children


def test_submitit_jobs_land_under_one_parent(team):
    proc = team.train("-m", "hydra/launcher=submitit_local", *SMALL, "optimizer.lr=0.01,0.1")
    parent, children = _parent_and_children(team)
    assert sorted(r.data.params["optimizer.lr"] for r in children) == ["0.01", "0.1"]
    assert all(r.info.status == "FINISHED" for r in children) and parent.info.status == "FINISHED"
    assert parent.data.tags["dlx.best_run_id"] in {r.info.run_id for r in children}
    for r in children:
        assert team.steps(r.info.run_id) == [1, 2]
    assert "sweep: best of 2 runs" in proc.stdout
    print(f"\nsubmitit_local: runs recorded {len(children)}/2 under one parent")


def test_a_failing_submitit_job_fails_only_its_point(team):
    proc = team.train("-m", "hydra/launcher=submitit_local", "optimizer=sgd",
                      "optimizer.lr=1e6,0.05", check=False)  # 1e6: the loss is not finite
    assert proc.returncode == 1, proc.stdout + proc.stderr
    parent, children = _parent_and_children(team)
    status = {r.data.params["optimizer.lr"]: r.info.status for r in children}
    assert status == {"0.05": "FINISHED", "1000000.0": "FAILED"}, status
    assert parent.info.status == "FINISHED" and parent.data.tags["dlx.children_failed"] == "1"
    assert "learning rate is probably too high" in proc.stderr, proc.stderr  # said by dlx itself
    (failed,) = [r for r in children if r.info.status == "FAILED"]
    assert "learning rate is probably too high" in failed.data.tags["dlx.error"]
    assert failed.info.run_name in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    print(f"\nsubmitit_local, one failing point: {status}, exit {proc.returncode}; "
          f"stderr: {proc.stderr.strip().splitlines()[-1]}")
