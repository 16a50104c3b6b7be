"""A team's tracking server: MLflow's own `mlflow server` over PostgreSQL with proxied artifacts
(docs/cluster.md), driven through every dlx command that records or reads runs, and by eight
`dlx train` processes at once."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time

import pytest

from dlx.tracking import PARENT_TAG

pytestmark = pytest.mark.cluster


def test_train_records_the_run_with_its_metrics_and_model_through_the_server(team, tmp_path):
    team("train", *team.overrides, "model=mlp", "trainer.epochs=2", "trainer.device=cpu",
         "trainer.progress=false")
    (run,) = team.runs()
    assert run.info.status == "FINISHED"
    assert run.data.tags["dlx.model"] == "mlp" and run.data.params["trainer.epochs"] == "2"
    assert team.steps(run.info.run_id) == [1, 2] == team.steps(run.info.run_id, "val_loss")
    assert "test_accuracy" in run.data.metrics
    names = {a.path for a in team.client().list_artifacts(run.info.run_id)}
    assert {"config.yaml", "model", "plots", "classification_report.json"} <= names
    # the artifacts are proxied: a client downloads them through the server
    folder = team.client().download_artifacts(run.info.run_id, "model", str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "model" / "weights.pt").is_file(), folder
    model = team.model(run)  # dlx.load_model through the server
    assert sum(p.numel() for p in model.parameters()) > 0

    # eval, predict and runs read it back from the server
    proc = team("eval", run.info.run_id, "--uri", team.uri, "--json")
    assert '"test_accuracy"' in proc.stdout or '"accuracy"' in proc.stdout, proc.stdout
    src, out = tmp_path / "inputs.csv", tmp_path / "pred.csv"
    from sklearn.datasets import load_digits

    load_digits(as_frame=True).data.iloc[:5].to_csv(src, index=False)
    team("predict", run.info.run_id, str(src), "-o", str(out), "--uri", team.uri)
    assert len(list(csv.DictReader(out.open()))) == 5
    proc = team("runs", "--uri", team.uri, "-e", team.experiment)
    assert run.info.run_name in proc.stdout


def test_a_sweep_records_a_parent_and_its_children(team):
    team.train("-m", "optimizer.lr=0.01,0.1", "trainer.epochs=1")
    runs = team.runs()
    parents = [r for r in runs if PARENT_TAG not in r.data.tags]
    children = [r for r in runs if PARENT_TAG in r.data.tags]
    assert len(parents) == 1 and len(children) == 2, [r.info.run_name for r in runs]
    assert {r.data.tags[PARENT_TAG] for r in children} == {parents[0].info.run_id}
    assert {r.data.params["optimizer.lr"] for r in children} == {"0.01", "0.1"}
    assert all(r.info.status == "FINISHED" for r in runs)
    assert parents[0].data.tags["dlx.best_run_id"] in {r.info.run_id for r in children}


def test_a_sigkilled_run_resumes_on_the_server(team):
    from dlx.training import checkpoint

    cwd = team.cwd
    big = ("model.hidden_sizes=[1024,1024]", "dataset=synthetic_logistic", "dataset.n_samples=200",
           "trainer.checkpoint_every=1")
    proc = subprocess.Popen([sys.executable, "-m", "dlx", "train", *team.overrides, "model=mlp",
                             "trainer.device=cpu", "trainer.progress=false",
                             "tracking.log_model=false", *big, "trainer.epochs=500"],
                            cwd=cwd, env=team.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            found = list(cwd.glob("outputs/runs/*/*/checkpoints/" + checkpoint.LAST))
            if found and checkpoint.load(found[0])["epoch"] >= 2:
                break
            time.sleep(0.1)
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err
    folder = found[0].parent
    deadline = time.time() + 60  # the writer, still alive, ends the run KILLED on the server
    while (not team.runs() or team.runs()[0].info.status == "RUNNING") and time.time() < deadline:
        time.sleep(0.3)
    (run,) = team.runs()
    assert run.info.status == "KILLED"
    killed = checkpoint.load(folder / checkpoint.LAST)["epoch"]
    target = killed + 2
    team("train", *team.overrides, "model=mlp", "trainer.device=cpu", "trainer.progress=false",
         "tracking.log_model=false", *big, f"trainer.epochs={target}",
         f"trainer.resume={folder.parent}")
    (run,) = team.runs()
    assert run.info.status == "FINISHED"
    assert team.steps(run.info.run_id) == list(range(1, target + 1))


def test_eight_concurrent_trains_record_eight_whole_runs(team):
    procs = []
    for i in range(8):  # started at once, each in a working dir of its own
        (team.cwd / f"job{i}").mkdir()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "dlx", "train", *team.overrides, "model=mlp",
             "trainer.epochs=2", "trainer.device=cpu", "trainer.progress=false",
             "tracking.log_model=false", f"trainer.seed={i}"],
            cwd=team.cwd / f"job{i}", env=team.env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [o[1] for o in outs]
    runs = team.runs()
    assert len(runs) == 8
    assert all(r.info.status == "FINISHED" for r in runs)
    for r in runs:
        assert team.steps(r.info.run_id) == [1, 2] == team.steps(r.info.run_id, "val_loss")
        assert {"test_loss", "test_accuracy", "best_epoch"} <= set(r.data.metrics)
    assert sorted(r.data.params["trainer.seed"] for r in runs) == [str(i) for i in range(8)]
