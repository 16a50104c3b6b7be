"""A tracking outage loses nothing (docs/cluster.md#a-tracking-outage): the real `mlflow server`
is stopped by pid in the middle of a run, once for 20 s (the writer waits for it: the run ends
FINISHED with every epoch) and once past `tracking.outage_wait` (the records go to the local spool,
dlx says so in one line, `dlx sync` uploads them exactly once)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.cluster

# ~1 s per epoch on one thread: the run is still training when the server goes away
SLOW = ("model=mlp", "model.hidden_sizes=[256,256]", "dataset=synthetic_logistic",
        "dataset.n_samples=10000", "trainer.device=cpu", "trainer.progress=false",
        "tracking.log_model=false")
ARTIFACTS = {"config.yaml", "data.json", "plots", "classification_report.json"}


def _start(team, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dlx", "train", *team.overrides, *SLOW,
                             *overrides], cwd=team.cwd, env=team.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _first_epoch_on_server(team, proc, timeout: float = 120):
    """Wait until the run's first epoch is on the server; (run id, steps there by then)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        runs = team.runs()
        if runs and team.steps(runs[0].info.run_id):
            return runs[0].info.run_id
        time.sleep(0.2)
    raise AssertionError(f"no epoch reached the server (exit {proc.poll()})")


def _names(team, run_id: str) -> set[str]:
    return {a.path for a in team.client().list_artifacts(run_id)}


def test_a_server_restarted_within_the_wait_gets_every_epoch(team, server):
    epochs, outage = 12, 20
    proc = _start(team, f"trainer.epochs={epochs}")
    try:
        run_id = _first_epoch_on_server(team, proc)
        server.stop()
        stopped = time.time()
        time.sleep(outage)
        restart = server.start()
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
        server.start() if server.proc is None else None
    assert proc.returncode == 0, err
    assert err == "", err  # the outage was waited for: nothing to tell
    (run,) = team.runs()
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert team.steps(run_id) == list(range(1, epochs + 1)) == team.steps(run_id, "val_loss")
    assert "test_accuracy" in run.data.metrics
    assert ARTIFACTS <= _names(team, run_id)
    # the trainer went on while the writer waited: training took less than the outage
    assert float(run.data.tags["dlx.fit_seconds"]) < outage
    print(f"\noutage {outage} s + restart {restart:.1f} s (away {time.time() - stopped:.0f} s "
          f"before the run ended); train_loss steps {len(team.steps(run_id))}/{epochs}")


def test_a_server_away_past_the_wait_gets_the_spool_through_dlx_sync(team, server):
    epochs = 8
    proc = _start(team, f"trainer.epochs={epochs}", "tracking.outage_wait=5")
    try:
        run_id = _first_epoch_on_server(team, proc)
        server.stop()
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
        if server.proc is None:
            server.start()
    # training went to its end; the records are in the spool; one line says so
    assert "test_accuracy=" in out, out
    assert proc.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    spool = team.cwd / ".dlx-spool"
    (journal,) = list(spool.iterdir())
    assert str(journal) in lines[0] and "`dlx sync`" in lines[0] and "outage_wait" in lines[0]

    # the next command that reads that store says the spool waits
    proc = team("runs", "--uri", team.uri, "-e", team.experiment)
    assert "dlx: note:" in proc.stderr and "dlx sync" in proc.stderr
    kept = team.cwd / "kept"
    shutil.copytree(journal, kept, ignore=shutil.ignore_patterns("lock"))

    proc = team("sync")
    assert "synced 1 run(s)" in proc.stdout, proc.stdout
    (run,) = team.runs()
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    steps = team.steps(run_id)
    assert steps == list(range(1, epochs + 1)) == team.steps(run_id, "val_loss")  # each once
    assert "test_accuracy" in run.data.metrics
    assert ARTIFACTS <= _names(team, run_id)
    assert not spool.exists() or not list(spool.iterdir())

    # a second sync uploads nothing
    proc = team("sync")
    assert "nothing to sync" in proc.stdout
    assert team.steps(run_id) == steps

    # a sync cut off before it marked its progress, replayed from the start: still once each
    shutil.copytree(kept, spool / journal.name)
    (spool / journal.name / "synced").unlink(missing_ok=True)
    team("sync")
    (again,) = team.runs()
    assert team.steps(run_id) == steps and again.data.metrics == run.data.metrics
    assert again.info.status == "FINISHED"
    print(f"\nspooled run: train_loss steps {len(steps)}/{epochs}, after a replayed sync "
          f"{len(team.steps(run_id))}")
