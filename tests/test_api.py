"""The Python API: dlx.train and dlx.sweep do what `dlx train` and `dlx train -m` do (the same
composition, validation, output dirs and MLflow runs), from a script or a notebook: nothing
prints or exits, errors are dlx's own types with the CLI's line, a second call in the same
process works, and Ctrl-C ends the run KILLED."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fixtures.runs import FAST, in_process

import dlx
from dlx.tracking import PARENT_TAG

SMALL = ("model=logistic", "dataset=synthetic_logistic", "trainer.device=cpu", *FAST)
DIVERGES = ("model=mlp", "model.hidden_sizes=[8]", "dataset=digits", "optimizer=sgd")  # at lr=1e30


@pytest.fixture
def here(dlx, monkeypatch):
    """The test's working directory as a user's: ./mlflow.db and ./outputs are there (the
    experiment's artifacts too: the tracking writer, kept for the next test, started elsewhere)."""
    monkeypatch.chdir(dlx.cwd)
    dlx.client().create_experiment("dlx", artifact_location=(dlx.cwd / "mlruns").as_uri())
    return dlx


def test_train_records_what_dlx_train_records_and_runs_again_in_the_same_process(here, capfd):
    with in_process():
        first = dlx.train(*SMALL, "trainer.epochs=2")
        second = dlx.train(*SMALL, "trainer.epochs=1", "optimizer.lr=0.05")
    assert capfd.readouterr() == ("", "")  # nothing printed
    runs = {r.info.run_id: r for r in here.runs()}
    assert set(runs) == {first.run_id, second.run_id}
    for result, epochs in ((first, 2), (second, 1)):
        run = runs[result.run_id]
        assert run.info.status == "FINISHED" and result.epochs == epochs
        assert run.data.params["trainer.epochs"] == str(epochs)
        assert run.data.tags["dlx.output_dir"] == result.output_dir
        assert result.test and all(run.data.metrics[k] == v for k, v in result.test.items())
        assert result.objective == run.data.metrics["val_loss"]
        folder = Path(result.output_dir)  # Hydra's run dir, as `dlx train` makes it
        assert folder.parent.parent == here.cwd / "outputs" / "runs"
        assert (folder / ".hydra" / "overrides.yaml").is_file()
    assert runs[second.run_id].data.params["optimizer.lr"] == "0.05"


def test_calls_from_two_folders_record_each_in_its_own(tmp_path, empty_store, monkeypatch):
    """A notebook that changes folder between calls: each run, its store and its artifacts are
    where the call was made, as with `dlx train` started there."""
    import shutil

    from fixtures.runs import Dlx

    for name in ("a", "b"):
        here = Dlx(tmp_path / name)
        here.cwd.mkdir()
        shutil.copy(empty_store, here.cwd / "mlflow.db")
        monkeypatch.chdir(here.cwd)
        with in_process():
            result = dlx.train(*SMALL, "trainer.epochs=1")
        (run,) = here.runs()
        assert run.info.run_id == result.run_id
        artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
        assert artifacts.is_relative_to(here.cwd) and (artifacts / "config.yaml").is_file()


def test_errors_are_dlx_errors_with_the_line_the_cli_prints(here):
    with pytest.raises(dlx.ConfigError) as bad:
        dlx.train(*SMALL, "trainer.device=tpu")
    cli = here.train(*SMALL, "trainer.device=tpu", check=False)
    assert cli.returncode == 1 and cli.stderr.strip() == f"dlx: error: {bad.value}"
    with pytest.raises(dlx.ConfigError, match="Could not find 'model/nope'; Available options"):
        dlx.train(*SMALL, "model=nope")  # Hydra's composition error, in one line
    with pytest.raises(dlx.ConfigError, match="dlx.train takes overrides"):
        dlx.train(*SMALL, "-m")
    with in_process(), pytest.raises(dlx.TrainingError, match="lower optimizer.lr"):
        dlx.train(*SMALL, *DIVERGES, "trainer.epochs=1", "optimizer.lr=1e30")
    (failed,) = here.runs()  # the config errors recorded nothing; the diverged run ended FAILED
    assert failed.info.status == "FAILED" and "lower optimizer.lr" in failed.data.tags["dlx.error"]


def test_sweep_returns_its_points_winner_parent_and_table_and_keeps_nothing_for_the_next(here):
    with in_process():
        first = dlx.sweep(*SMALL, *DIVERGES, "trainer.epochs=1,2", "optimizer.lr=0.1,1e30")
        second = dlx.sweep(*SMALL, "trainer.epochs=1", "optimizer.lr=0.01,0.02")
    runs = here.runs()
    parents = {r.info.run_id: r for r in runs if r.data.tags.get("dlx.kind") == "sweep"}
    assert set(parents) == {first.parent_run_id, second.parent_run_id}

    assert len(first.points) == 4 and len(first.failed) == 2
    assert all("lower optimizer.lr" in p.error for p in first.failed)
    assert {p.point.cfg.optimizer.lr for p in first.failed} == {1e30}
    finished = [p for p in first.points if p.result is not None]
    assert first.best is min(finished, key=lambda p: p.objective)
    assert parents[first.parent_run_id].data.tags["dlx.best_run_id"] == first.best.result.run_id
    assert [row["rank"] for row in first.table] == [1, 2, "", ""]
    assert first.table[0]["run_id"] == first.best.result.run_id
    assert first.results_csv == Path(first.best.result.output_dir).parent / "results.csv"
    assert first.results_csv.is_file()

    # the second sweep knows only its own points: nothing of the first one's carried over
    assert len(second.points) == 2 and second.failed == []
    children = [r for r in runs if r.data.tags.get(PARENT_TAG) == second.parent_run_id]
    assert {r.info.run_id for r in children} == {p.result.run_id for p in second.points}


def test_a_sweep_without_tracking_still_has_its_winner_and_table(here):
    with in_process():
        found = dlx.sweep(*SMALL, "trainer.epochs=1", "optimizer.lr=0.01,0.1",
                          "tracking.enabled=false")
    assert found.parent_run_id is None and found.results_csv is None and here.runs() == []
    assert found.best is min(found.points, key=lambda p: p.objective)
    assert found.table[0]["rank"] == 1 and found.table[0]["val_loss"] == found.best.objective
    assert {"optimizer.lr"} <= set(found.table[0])  # the swept parameter, as in results.csv


def test_config_dir_adds_the_users_own_options_as_with_the_cli(here, tmp_path):
    folder = tmp_path / "myconf" / "optimizer"
    folder.mkdir(parents=True)
    (folder / "mysgd.yaml").write_text("defaults:\n  - /optimizer_sgd_schema@_here_\n  - _self_\n"
                                       "lr: 0.123\n")
    with in_process():
        result = dlx.train(*SMALL, "trainer.epochs=1", "optimizer=mysgd",
                           config_dir=folder.parent)
    here.train(*SMALL, "trainer.epochs=1", "optimizer=mysgd", "--config-dir", str(folder.parent))
    runs = here.runs()
    assert len(runs) == 2 and result.run_id in {r.info.run_id for r in runs}
    for run in runs:
        assert run.data.params["optimizer.lr"] == "0.123"
        assert run.data.params["optimizer._target_"] == "torch.optim.SGD"
        assert run.data.tags["dlx.optimizer"] == "mysgd"


SCRIPT = """
import sys
import dlx

try:
    dlx.train("model=mlp", "trainer.epochs=400", "trainer.device=cpu", *{fast!r})
except dlx.Interrupted as e:
    print("caught:", type(e).__name__, e, flush=True)
    again = dlx.train("model=logistic", "dataset=synthetic_logistic", "trainer.epochs=1",
                      *{fast!r})
    print("again:", again.run_id, flush=True)
    sys.exit(3)
"""


def test_ctrl_c_in_a_script_ends_the_run_killed_and_raises_interrupted(here):
    script = here.cwd / "train.py"
    script.write_text(textwrap.dedent(SCRIPT.format(fast=FAST)))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=here.cwd, env=here.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not _trained_an_epoch(here):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 3, out + err
    assert "caught: Interrupted interrupted; the run was marked KILLED" in out
    runs = {r.info.run_id: r for r in here.runs()}
    (killed,) = [r for r in runs.values() if r.data.tags["dlx.model"] == "mlp"]
    assert killed.info.status == "KILLED" and "dlx.ended_by" not in killed.data.tags
    again = out.split("again: ")[1].split()[0]  # the second call in the same process
    assert runs[again].info.status == "FINISHED"


def _trained_an_epoch(dlx_dir) -> bool:
    if not (dlx_dir.cwd / "mlflow.db").exists():
        return False
    return any(r.info.status == "RUNNING" and "train_loss" in r.data.metrics for r in dlx_dir.runs())


def test_import_dlx_is_light_and_dlx_sweep_stays_the_function():
    code = ("import sys, dlx; import dlx.sweep.session; from dlx.sweep import points; "
            "heavy = [m for m in ('torch', 'mlflow', 'hydra') if m in sys.modules]; "
            "print(heavy, dlx.sweep.__module__, callable(dlx.sweep))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "dlx.api", "True"]
