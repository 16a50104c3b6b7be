"""What a user sees: only dlx's own lines, sweep progress, the runs table at 80 and 120 columns,
links that open MLflow's Model-training view, the dataset and system metrics in MLflow, and
paths with spaces or Chinese characters typed as they are."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fixtures.datasets import make_csv, make_mnist

DLX_LINE = re.compile(
    r"^(epoch \d+: |test_\w+=|run \S+ \([0-9a-f]{32}\); files in |"
    r"  http://127\.0\.0\.1:5000/#/experiments/\d+/runs/[0-9a-f]{32}\?workflowType=machine_learning$|"
    r"browse runs: dlx ui|point \d+/\d+ \(|sweep: )")


def _foreign(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not DLX_LINE.match(line)]


def test_a_default_run_on_a_new_store_prints_only_dlx_lines(new_dlx):
    dlx = new_dlx
    proc = dlx("train", "trainer.epochs=2", "trainer.progress=false")  # creates ./mlflow.db
    assert not _foreign(proc.stdout + proc.stderr), proc.stdout + proc.stderr
    assert proc.stderr == ""
    (run,) = dlx.runs()
    link = f"/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}?workflowType=machine_learning"
    assert link in proc.stdout


def test_a_sweep_says_which_point_it_is_on_and_how_long_is_left(dlx):
    proc = dlx.train("-m", "model=mlp", "trainer.epochs=1", "optimizer.lr=0.01,0.02,0.03")
    points = [line for line in proc.stdout.splitlines() if line.startswith("point ")]
    assert points[0] == "point 1/3 (optimizer.lr=0.01)"
    assert re.fullmatch(r"point 2/3 \(optimizer\.lr=0\.02\) … ~\d+s left", points[1]), points
    assert re.fullmatch(r"point 3/3 \(optimizer\.lr=0\.03\) … ~\d+s left", points[2]), points
    assert not _foreign(proc.stdout + proc.stderr)


@pytest.fixture(scope="module")
def table(module_dlx):
    """A plain run and a 2-point sweep in one store."""
    dlx = module_dlx
    dlx.train("model=mlp", "trainer.epochs=1")
    dlx.train("-m", "model=mlp", "trainer.epochs=1", "optimizer.lr=0.01,0.02")
    return dlx


@pytest.mark.parametrize("columns", [80, 120])
def test_runs_table_is_readable_at_the_terminal_width(table, columns):
    table.env["COLUMNS"] = str(columns)
    out = table("runs").stdout
    lines = out.splitlines()
    assert all(len(line) <= columns for line in lines if "http" not in line), out
    runs = list(table.runs())
    for r in runs:  # every name whole, on one line
        assert any(line.strip().startswith(r.info.run_name) for line in lines), r.info.run_name
    header = next(line for line in lines if line.strip().startswith("name"))
    assert header.split() == ["name", "status", "model", "dataset", "val_loss", "test_accuracy"]
    assert "FINI…" not in out and "…" not in header
    assert "in the MLflow UI (dlx ui): http://127.0.0.1:5000/#/experiments/" in out
    assert "workflowType=machine_learning" in out


def test_a_sweeps_children_show_what_was_swept_and_more_on_request(table):
    parent = next(r for r in table.runs() if r.data.tags.get("dlx.kind") == "sweep")
    out = table("runs", "--sweep", parent.info.run_id).stdout
    header = next(line for line in out.splitlines() if line.strip().startswith("name"))
    assert header.split() == ["name", "status", "optimizer.lr", "val_loss"]
    wide = table("runs", "--columns", "optimizer.lr,train_loss,dlx.output_dir").stdout
    assert "train_loss" in wide and "output_dir" in wide
    every = json.loads(table("runs", "--json").stdout)
    assert len(every) == 4
    details = table("runs", "--all").stdout
    assert "  trainer.seed: 42" in details and "  dlx.output_dir: " in details


def test_mlflow_knows_the_runs_dataset_and_system_metrics(table):
    run = next(r for r in table.runs() if r.data.tags.get("dlx.kind") != "sweep")
    inputs = {[t.value for t in d.tags][0]: d.dataset for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"train", "val", "test"}
    assert all(d.name == "digits" for d in inputs.values())
    assert json.loads(inputs["test"].profile) == {"split": "test", "rows": 360}
    assert "system/cpu_utilization_percentage" in run.data.metrics


def test_system_metrics_can_be_switched_off(dlx):
    dlx.train("model=mlp", "trainer.epochs=1", "tracking.system_metrics=false")
    (run,) = dlx.runs()
    assert not any(k.startswith("system/") for k in run.data.metrics)


# ------------------------------------------------------------------- paths in any language
@pytest.fixture
def chinese_dir(tmp_path) -> Path:
    folder = tmp_path / "我的 数据"
    folder.mkdir()
    return folder


def test_a_csv_under_a_chinese_folder_with_a_space_trains_predicts_and_evals(dlx, chinese_dir):
    data = make_csv(chinese_dir / "表 1.csv", n=200)
    dlx("train", "dataset=csv", f"dataset.path={data}", "model=mlp", "trainer.epochs=2",
        "trainer.progress=false")
    (run,) = dlx.runs()
    assert run.data.params["dataset.path"] == str(data)
    rows = dlx("predict", run.info.run_id, str(data)).stdout.splitlines()
    assert rows[0].startswith("row,prediction") and len(rows) == 201
    result = json.loads(dlx("eval", run.info.run_id, "--json").stdout)
    assert result["metrics"]["test_accuracy"] == run.data.metrics["test_accuracy"]
    shown = dlx("config", "show", "dataset=csv", f"dataset.path={data}").stdout
    assert "我的 数据" in shown


def test_an_mnist_folder_under_a_chinese_folder_trains_and_evals(dlx, chinese_dir):
    root = make_mnist(chinese_dir / "mnist", n_train=300, n_test=100)
    dlx("train", "dataset=mnist", f"dataset.root={root}", "model=mlp", "trainer.epochs=1",
        "trainer.progress=false")
    (run,) = dlx.runs()
    assert run.data.params["dataset.root"] == str(root)
    result = json.loads(dlx("eval", run.info.run_id, "--json").stdout)
    assert result["metrics"]["test_loss"] == run.data.metrics["test_loss"]


def test_other_values_hydra_refuses_are_one_line_with_the_quoted_form(dlx):
    proc = dlx.train("tracking.experiment=我的实验", "trainer.epochs=1", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "dlx: error: cannot read the override tracking.experiment=我的实验: Hydra's override grammar "
        "refuses some of its characters unquoted; type it quoted: 'tracking.experiment=\"我的实验\"'")


def test_shell_completion_reads_past_a_path_in_chinese(tmp_path):
    import os
    import subprocess
    import sys

    words = "dlx train dataset=csv dataset.path = 我的数据/表.csv trainer.ep"
    env = {**os.environ, "_DLX_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - 1)}
    proc = subprocess.run([str(Path(sys.executable).parent / "dlx")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "trainer.epochs=" in proc.stdout.split()
