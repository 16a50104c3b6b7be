"""Your own project (docs/extending.md): a network, data, an optimizer and config options of your
own, through the real `dlx` command, and the one trust rule for `_target_` on every path a config
takes (the command line, a config folder, a run's logged config read back)."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures import project
from fixtures.runs import Dlx


@pytest.fixture
def mine(dlx) -> Dlx:
    """A `dlx` working folder holding the user's project (tests/fixtures/project.py)."""
    project.write(dlx.cwd)
    return dlx


def one_line(proc) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlx: error: "), proc.stderr
    return lines[0]


def no_running_runs(dlx: Dlx) -> None:
    assert all(r.info.status != "RUNNING" for r in dlx.runs())


# ------------------------------------------------------------------------------ your network
def test_own_network_on_the_command_line_takes_regularizers_and_serves_every_verb(mine,
                                                                                 monkeypatch):
    mine("train", "model=custom", "model._target_=mynets.TinyNet", "+model.hidden=24",
         "regularizer=[l2,dropout,early_stopping]", "regularizer.dropout.p=0.3",
         "scheduler=cosine", "trainer.epochs=4", "trainer.progress=false")
    (run,) = mine.runs()
    assert run.info.status == "FINISHED"
    assert run.data.params["model._target_"] == "mynets.TinyNet"
    assert run.data.params["model.hidden"] == "24"
    assert run.data.metrics["test_accuracy"] > 0.5  # digits, 10 classes: chance is 0.1
    monkeypatch.syspath_prepend(str(mine.cwd))  # a notebook in the project's folder
    monkeypatch.delitem(sys.modules, "mynets", raising=False)
    net = mine.model(run)  # dlx.load_model: the user's class, built with its options
    assert type(net).__name__ == "TinyNet" and net.net[1].out_features == 24
    assert net.net[3].p == 0.3  # regularizer=[dropout] set the rate on the user's own Dropout
    evaluated = json.loads(mine("eval", run.info.run_id, "--json").stdout)
    assert evaluated["metrics"]["test_accuracy"] == pytest.approx(run.data.metrics["test_accuracy"])
    exported = mine("export", run.info.run_id)
    assert "MLflow model models:/" in exported.stdout
    explained = mine("explain", run.info.run_id)
    assert "saliency" in explained.stdout


def test_own_network_data_optimizer_and_sweep_from_a_config_folder_with_cv(mine):
    mine("train", "-m", "--config-dir", "conf", "model=tinynet", "dataset=blobs",
         "optimizer=halfsgd", "sweep=lrs", "trainer.cv_folds=2", "trainer.epochs=3",
         "trainer.progress=false")
    runs = mine.runs()
    parent = next(r for r in runs if r.data.tags.get("dlx.kind") == "sweep")
    children = [r for r in runs if r is not parent]
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
    assert {r.data.params["optimizer.lr"] for r in children} == {"0.003", "0.03"}
    assert all(r.data.params["optimizer._target_"] == "myopt.HalfSGD" for r in children)
    assert all("cv_mean_val_accuracy" in r.data.metrics for r in children)
    best = next(r for r in children if r.info.run_id == parent.data.tags["dlx.best_run_id"])
    assert best.data.metrics["test_accuracy"] > 0.9  # the refit winner, on well-separated blobs
    # predict on new rows of the user's data, read as the run's function returned them
    rows = Path(mine.cwd / "rows.csv")
    rows.write_text("a,b,c,d\n5,0,0,0\n0,5,0,0\n0,0,5,0\n")
    out = list(csv.DictReader(io.StringIO(mine("predict", best.info.run_id, "rows.csv").stdout)))
    assert [r["prediction"] for r in out] == ["0", "1", "2"]


def test_experiment_preset_of_the_folder_trains_as_written(mine):
    mine("train", "--config-dir", "conf", "+experiment=tiny", "trainer.progress=false")
    (run,) = mine.runs()
    assert run.info.status == "FINISHED" and run.data.params["trainer.epochs"] == "4"
    assert run.data.params["dataset._target_"] == "mydata.blobs"
    assert run.data.params["dataset.centers"] == "3"


# ------------------------------------------------------------------------------ your data
@pytest.mark.parametrize("target, n_train, n_val, n_test, task", [
    ("mydata.blobs", None, None, 60, "multiclass"),  # (X, y): dlx's seeded 80/20 and 10% val
    ("mydata.named_splits", 120, 30, 50, "multiclass"),  # its own three splits, as given
    ("mydata.tuple_splits", 135, 15, 50, "multiclass"),  # (train, test): val held out of train
    ("mydata.line", None, None, 40, "regression"),  # float targets
    ("mydata.Squares", None, None, 24, "binary"),  # a Dataset subclass named directly
])
def test_own_data_in_each_form_is_split_and_recorded(mine, target, n_train, n_val, n_test, task):
    model = "model=linear" if task == "regression" else "model=mlp"
    mine.train("dataset=custom", f"dataset._target_={target}", model, "trainer.epochs=2")
    (run,) = mine.runs()
    assert run.info.status == "FINISHED"
    info = json.loads((Path(run.info.artifact_uri.removeprefix("file://")) / "data.json").read_text())
    assert info["task"] == task and info["n_test"] == n_test and info["source"] == target
    if n_train is not None:
        assert (info["n_train"], info["n_val"]) == (n_train, n_val)
    (inputs,) = {i.dataset.name for i in run.inputs.dataset_inputs}
    assert inputs == target


def test_own_data_from_a_function_returning_a_dataset_of_images_trains_a_cnn(mine):
    mine.train("dataset=custom", "dataset._target_=mydata.squares_dataset", "+dataset.n=200",
               "model=cnn", "model.channels=[8]", "trainer.epochs=6", "optimizer.lr=0.01")
    (run,) = mine.runs()
    assert run.data.metrics["test_accuracy"] == 1.0  # a square in one corner or the other


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("overrides, expected", [
    (["model=custom", "model._target_=nonets.TinyNet"],
     "model._target_=nonets.TinyNet: no module named nonets on sys.path ("),
    (["model=custom", "model._target_=mynets.NoSpec"],
     "model._target_=mynets.NoSpec does not take `spec`: add a `spec` parameter"),
    (["model=custom", "model._target_=mynets.TinyNet", "+model.hiden=3"],
     "model.hiden is not a parameter of mynets.TinyNet (its parameters: hidden)"),
    (["model=custom", "model._target_=mynets.NeedsDepth"],
     "mynets.NeedsDepth needs model.depth (a parameter without a default): set +model.depth="),
    (["model=custom", "model._target_=mynets.Refuses"],
     "could not build model mynets.Refuses: ValueError: hidden must be even"),
    (["model=custom", "model._target_=mynets.not_a_class"],
     "model._target_=mynets.not_a_class is a function: name an nn.Module subclass"),
    (["model=custom"], "model._target_ is not set: name an nn.Module subclass"),
    (["dataset=custom", "dataset._target_=mydata.raises"],
     "dataset._target_=mydata.raises raised FileNotFoundError: data.parquet is not there"),
    (["dataset=custom", "dataset._target_=mydata.short_labels"],
     "dataset._target_=mydata.short_labels returned 10 rows of X and 9 labels"),
    (["dataset=custom", "dataset._target_=mydata.one_class"],
     "the labels y of mydata.one_class has one value (0): a classifier needs 2 or more classes"),
    (["dataset=custom", "dataset._target_=mydata.nan_labels"],
     "dataset._target_=mydata.nan_labels returned 2 missing (NaN) labels (rows 3, 7)"),
    (["dataset=custom", "dataset._target_=mydata.blobs", "+dataset.centres=3"],
     "dataset.centres is not a parameter of mydata.blobs (its parameters: n, centers, seed)"),
    (["--config-dir", "nowhere"], "--config-dir nowhere does not exist: pass the folder"),
])
def test_bad_input_is_one_line(mine, overrides, expected):
    proc = mine.train("model=mlp", *overrides, "trainer.epochs=1", check=False)
    assert expected in one_line(proc)
    no_running_runs(mine)


def test_a_config_folder_option_named_as_one_of_dlx_is_refused(mine):
    (mine.cwd / "conf" / "model" / "cnn.yaml").write_text("_target_: mynets.TinyNet\n")
    line = one_line(mine.train("--config-dir", "conf", "trainer.epochs=1", check=False))
    assert "--config-dir conf: model/cnn.yaml has the name of dlx's own" in line


# ------------------------------------------------------------------------------ the trust rule
@pytest.mark.parametrize("key, target, why", [
    ("optimizer", "os.system", "is in Python's standard library"),
    ("model", "subprocess.Popen", "is in Python's standard library"),
    ("dataset", "shutil.rmtree", "is in Python's standard library"),
    ("optimizer", "builtins.eval", "is in Python's standard library"),
    ("dataset", "sklearn.datasets.make_moons", "is a function of an installed package"),
    ("model", "myopt.HalfSGD", "is the class myopt.HalfSGD: name an nn.Module subclass"),
    ("optimizer", "mynets.TinyNet", "is the class mynets.TinyNet: name a torch.optim.Optimizer"),
])
def test_targets_that_are_not_what_their_group_builds_are_refused(mine, key, target, why):
    extra = ["dataset=custom"] if key == "dataset" else []
    proc = mine.train("model=logistic", *extra, f"{key}._target_={target}", "trainer.epochs=1",
                      check=False)
    assert f"{key}._target_={target} {why}" in one_line(proc)
    assert mine.runs() == []


def test_your_own_classes_and_functions_need_no_switch(mine):
    mine.train("model=custom", "model._target_=mynets.TinyNet", "optimizer=custom",
               "optimizer._target_=myopt.HalfSGD", "+optimizer.momentum=0.5", "dataset=custom",
               "dataset._target_=mydata.blobs", "trainer.epochs=1")
    (run,) = mine.runs()
    assert run.info.status == "FINISHED"
    assert run.data.params["optimizer._target_"] == "myopt.HalfSGD"


def test_a_logged_config_read_back_obeys_the_same_rule(mine):
    """A run record in a shared store is a config from someone else: eval, load_model and
    predict refuse a `_target_` the command line would refuse, before calling anything."""
    mine("train", "model=custom", "model._target_=mynets.TinyNet", "trainer.epochs=1",
         "trainer.progress=false")
    (run,) = mine.runs()
    assert mine("eval", run.info.run_id).returncode == 0  # as logged: fine
    (about,) = (mine.cwd / "mlruns").rglob("model/model.json")  # the store's artifact
    logged = json.loads(about.read_text())
    logged["model"]["_target_"] = "os.system"
    logged["model"]["command"] = "touch pwned"
    about.write_text(json.dumps(logged))
    line = one_line(mine("eval", run.info.run_id, check=False))
    assert "model._target_=os.system is in Python's standard library" in line
    np.save(mine.cwd / "rows.npy", np.zeros((2, 8, 8), dtype=np.float32))
    line = one_line(mine("predict", run.info.run_id, "rows.npy", check=False))
    assert "model._target_=os.system is in Python's standard library" in line
    assert not (mine.cwd / "pwned").exists()


# ------------------------------------------------------------------------------ the config folder
def test_config_list_show_help_and_completion_see_the_folder(mine):
    listed = mine("config", "list", "--config-dir", "conf").stdout
    for group, name in (("model", "tinynet"), ("dataset", "blobs"), ("optimizer", "halfsgd"),
                        ("experiment", "tiny"), ("sweep", "lrs")):  # whole table cells
        assert re.search(rf"│ {group}\s+│ {name}\s+│", listed), (group, name)
    keys = mine("config", "list", "dataset", "--config-dir", "conf").stdout
    assert re.search(r"│ blobs\s+│ centers\s+│", keys)
    assert re.search(r"│ blobs\s+│ _target_\s+│ mydata\.blobs", keys)
    shown = mine("config", "show", "--config-dir", "conf", "+experiment=tiny").stdout
    assert "mynets.TinyNet" in shown and "mydata.blobs" in shown
    helped = mine("train", "--config-dir", "conf", "--help").stdout
    assert "tinynet" in helped and "halfsgd" in helped
    env = {**mine.env, "_DLX_COMPLETE": "complete_bash",
           "COMP_WORDS": "dlx train --config-dir conf model =", "COMP_CWORD": "5"}
    proc = subprocess.run([str(Path(sys.executable).parent / "dlx")], env=env, cwd=mine.cwd,
                          capture_output=True, text=True, timeout=60, check=True)
    assert "tinynet" in proc.stdout.split() and "cnn" in proc.stdout.split()


# ------------------------------------------------------------------------------ dlx init, version
def test_init_writes_a_project_that_trains_as_written(new_dlx):
    new_dlx("init", "lab")
    lab = Dlx(new_dlx.cwd / "lab")
    assert sorted(p.name for p in lab.cwd.rglob("*") if p.is_file()) == [
        "README.md", "lab.py", "spirals.yaml", "starter.yaml", "tinynet.yaml"]
    command = "dlx train --config-dir conf +experiment=starter"
    assert command in (lab.cwd / "README.md").read_text()
    lab(*command.split()[1:], "trainer.progress=false")
    (run,) = lab.runs()
    assert run.info.status == "FINISHED" and run.data.metrics["test_accuracy"] >= 0.9
    again = new_dlx("init", "lab", check=False)
    assert "exist already: dlx init writes a new project" in one_line(again)


def test_version_is_the_package_version(new_dlx):
    from importlib.metadata import version

    assert new_dlx("--version").stdout.strip() == f"dlx {version('dlx')}"
