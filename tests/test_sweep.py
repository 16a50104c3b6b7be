"""Sweeps as GridSearchCV replacement: nested runs, the best-run report, launchers, failures."""

import csv
import json
import re
from pathlib import Path

import pytest

from dlx.tracking import PARENT_TAG


def _sweep(dlx):
    runs = dlx.runs()
    (parent,) = [r for r in runs if r.data.tags.get("dlx.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, children


def test_grid_sweep_reports_best_params_like_gridsearchcv(dlx):
    dlx.train("-m", "sweep=grid", "trainer.epochs=1,2", "dataset.batch_size=32,64",
              "optimizer.lr=0.01,0.1")
    parent, children = _sweep(dlx)
    assert len(children) == 8 and all(c.info.status == "FINISHED" for c in children)
    assert parent.info.status == "FINISHED"
    grid = {(c.data.params["trainer.epochs"], c.data.params["dataset.batch_size"],
             c.data.params["optimizer.lr"]) for c in children}
    assert len(grid) == 8  # the command line replaced each of the preset's three axes

    # the parent holds the results table and the objective plot
    client = dlx.client()
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"results.csv", "objective.png"} <= artifacts
    local = Path(client.download_artifacts(parent.info.run_id, "results.csv", str(dlx.cwd)))
    rows = list(csv.DictReader(local.open()))
    assert len(rows) == 8
    top = rows[0]
    assert top["rank"] == "1"
    assert float(top["val_loss"]) == min(float(r["val_loss"]) for r in rows)
    assert parent.data.tags["dlx.best_run_id"] == top["run_id"]
    png = Path(client.download_artifacts(parent.info.run_id, "objective.png", str(dlx.cwd)))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # `dlx runs --best` prints the same winner, its parameters and score
    best = json.loads(dlx("runs", "--best", "--json").stdout)
    assert best["best_run_id"] == top["run_id"]
    assert best["best_params"] == {"dataset.batch_size": top["dataset.batch_size"],
                                   "optimizer.lr": top["optimizer.lr"],
                                   "trainer.epochs": top["trainer.epochs"]}
    assert best["best_score"]["val_loss"] == pytest.approx(float(top["val_loss"]))
    assert "macro avg" in best["classification_report"]
    text = dlx("runs", "--best").stdout
    assert top["run_id"] in text and "best_params:" in text and "macro avg" in text

    # in-process jobs read the dataset once
    cached = sorted(c.data.tags["dlx.data_cached"] for c in children)
    assert cached == ["false"] + ["true"] * 7


def _table(out: str) -> list[dict[str, str]]:
    """The rows of the table `dlx runs` printed, as {column: cell text}; cells are read at their
    column's position under the header (empty cells stay empty), with or without box lines."""
    lines = [re.sub("[│┃]", " ", line) for line in out.splitlines()]
    at = next(i for i, line in enumerate(lines) if line.split()[:2] == ["name", "status"])
    starts = [m.start() for m in re.finditer(r"\S+", lines[at])]
    columns = lines[at].split()
    rows = []
    for line in lines[at + 1:]:
        if not line.strip():
            break
        if not re.search(r"[^\s─━┡╇┩└┴┘]", line):  # a rule between header and rows
            continue
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None])]
        rows.append(dict(zip(columns, cells)))
    return rows


def test_runs_table_lists_and_sorts(dlx):
    dlx.train("-m", "model=mlp", "optimizer.lr=0.001,0.01", "trainer.epochs=1")
    parent, children = _sweep(dlx)
    assert len(children) == 2
    out = dlx("runs", "--sort", "val_loss").stdout
    assert "3 runs" in out  # the title counts the parent and its 2 children
    rows = _table(out)
    by_name = {r["name"]: r for r in rows}
    assert len(rows) == 3
    assert set(by_name) == {parent.info.run_name, *(c.info.run_name for c in children)}
    assert by_name[parent.info.run_name]["model"] == "sweep"
    for child in children:
        row = by_name[child.info.run_name]
        assert (row["status"], row["model"], row["dataset"]) == ("FINISHED", "mlp", "digits")
        assert row["val_loss"] == f"{child.data.metrics['val_loss']:.4g}"
    # sorted by val_loss, lowest first (the parent has none)
    listed = [r["name"] for r in rows if r["name"] != parent.info.run_name]
    assert listed == [c.info.run_name for c in sorted(children,
                                                      key=lambda c: c.data.metrics["val_loss"])]
    rows = json.loads(dlx("runs", "--sort", "val_loss", "--json").stdout)
    losses = [r["metrics"]["val_loss"] for r in rows if "val_loss" in r["metrics"]]
    assert losses == sorted(losses) and len(losses) == 2 and len(rows) == 3
    bad = dlx("runs", "--experiment", "nope", check=False)
    assert bad.returncode == 1 and "no experiment 'nope'" in bad.stderr


@pytest.mark.slow
def test_joblib_sweep_loses_no_run(dlx):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    lrs = ",".join(str(0.001 * i) for i in range(1, 9))
    proc = dlx.train("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                     f"optimizer.lr={lrs}", "model=mlp", "trainer.epochs=1", timeout=240)
    assert "Warning" not in proc.stderr, proc.stderr  # no leaked worker resources at exit
    parent, children = _sweep(dlx)
    assert len(children) == 8
    assert all(c.info.status == "FINISHED" for c in children)
    assert parent.data.tags["dlx.children"] == "8" and parent.data.tags["dlx.children_failed"] == "0"


@pytest.mark.spawn  # also run with a new interpreter per command (make test-spawn)
def test_a_failing_job_does_not_stop_the_sweep(dlx):
    proc = dlx.train("-m", "optimizer=sgd", "optimizer.lr=1e6,0.05", "trainer.epochs=2",
                     check=False)
    assert proc.returncode == 1
    assert "learning rate is probably too high" in proc.stderr
    parent, children = _sweep(dlx)
    status = {c.data.params["optimizer.lr"]: c.info.status for c in children}
    assert status == {"1000000.0": "FAILED", "0.05": "FINISHED"}
    ok = [c for c in children if c.info.status == "FINISHED"][0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["dlx.best_run_id"] == ok.info.run_id
    assert parent.data.tags["dlx.children_failed"] == "1"
    (failed,) = [c for c in children if c.info.status == "FAILED"]
    assert "learning rate is probably too high" in failed.data.tags["dlx.error"]


def test_slurm_launcher_preset_composes(dlx):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    out = dlx("train", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "--cfg", "hydra").stdout
    assert "_target_: hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher" in out
    assert "partition: gpu" in out and "gpus_per_node: 1" in out


def test_hydra_argument_clash_is_one_line(dlx):
    proc = dlx("train", "-m", "--cfg", "job", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "dlx: error: Only one of --run, --multirun, --cfg, --info and --shell_completion can be specified"]


@pytest.mark.slow
def test_ray_launcher_without_an_address_starts_a_local_ray(dlx):
    """hydra/launcher=ray on a laptop: Ray's own rule starts a local instance for the sweep
    (tests/cluster/test_ray.py runs it on a two-node cluster)."""
    dlx.env["RAY_AUTH_MODE"] = "disabled"  # Ray would write a token into ~/.ray
    out = dlx.train("-m", "hydra/launcher=ray", "model=logistic", "dataset=synthetic_logistic",
                    "optimizer.lr=0.01,0.02", "trainer.epochs=1", timeout=300)
    parent, children = _sweep(dlx)
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    assert out.stdout.count("sweep: point ") == 2 and "sweep: best of 2 runs" in out.stdout


def test_an_unreachable_ray_address_is_one_line(dlx):
    proc = dlx.train("-m", "hydra/launcher=ray", "hydra.launcher.address=127.0.0.1:1",
                     "model=logistic", "optimizer.lr=0.01,0.1", check=False, timeout=120)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("dlx: error: cannot reach the Ray cluster at "
                           "hydra.launcher.address=127.0.0.1:1"), line
    assert "ray start --head --port=1" in line
    assert dlx.runs() and all(r.info.status != "RUNNING" for r in dlx.runs())


def test_ray_launcher_without_ray_installed_says_how_to_install_it(dlx, tmp_path):
    hidden = tmp_path / "no-ray"
    (hidden / "ray").mkdir(parents=True)  # an import of ray fails as it does where it is missing
    (hidden / "ray" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'ray'\", name='ray')\n")
    dlx.env["PYTHONPATH"] = str(hidden)
    proc = dlx.train("-m", "hydra/launcher=ray", "model=logistic", "optimizer.lr=0.01,0.1",
                     check=False, timeout=120)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line == "dlx: error: hydra/launcher=ray needs Ray, which is not installed here: " \
                   "pip install 'ray>=2.9'", line

def test_optuna_on_a_shared_storage_counts_the_studys_trials_and_refuses_a_taken_name(dlx):
    storage = f"sqlite:///{dlx.cwd / 'optuna.db'}"
    run = ("-m", "sweep=optuna", "model=logistic", "dataset=synthetic_logistic", "trainer.epochs=1",
           f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=shared",
           "hydra.sweeper.pruner=null")
    dlx.train(*run, "hydra.sweeper.n_trials=2")
    dlx.train(*run, "hydra.sweeper.n_trials=3")  # the same study, continued to 3 trials in all
    runs = dlx.runs()
    parents = [r for r in runs if PARENT_TAG not in r.data.tags]
    assert len(parents) == 1  # one parent run per study, taken up by the second sweep
    assert sum(PARENT_TAG in r.data.tags for r in runs) == 3
    proc = dlx.train(*run, "hydra.sweeper.load_if_exists=false", check=False)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("dlx: error: hydra.sweeper.study_name=shared exists already")
    assert "load_if_exists=true" in line


def test_optuna_on_an_unreachable_database_is_one_redacted_line(dlx):
    proc = dlx.train("-m", "sweep=optuna", "model=logistic", "trainer.epochs=1",
                     "hydra.sweeper.storage=postgresql+psycopg://bob:hunter2@127.0.0.1:1/optuna",
                     check=False, timeout=120)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("dlx: error: cannot open the Optuna storage")
    assert "bob:***@127.0.0.1:1" in line and "hunter2" not in line
    assert all(r.info.status != "RUNNING" for r in dlx.runs())


def test_a_cross_validated_grid_refits_only_its_winner_like_gridsearchcv(dlx):
    """GridSearchCV(cv=3, refit=True): every point scored by its folds, only the best one fit
    again on all of train+val and tested; results.csv shows the swept params and each fold."""
    out = dlx("train", "-m", "model=mlp", "trainer.epochs=1,2", "optimizer.lr=0.01,0.1",
              "trainer.cv_folds=3", "trainer.progress=false").stdout  # (the model logged)
    parent, children = _sweep(dlx)
    assert len(children) == 4 and all(c.info.status == "FINISHED" for c in children)
    best_id = parent.data.tags["dlx.best_run_id"]
    assert f"refitting the winner ({best_id})" in out
    refit = [c for c in children if "test_accuracy" in c.data.metrics]
    assert [c.info.run_id for c in refit] == [best_id]
    (winner,) = [dlx.client().get_run(best_id)]
    assert winner.info.status == "FINISHED" and winner.data.tags["dlx.refit"] == "winner"
    assert winner.data.tags["dlx.scores_only"] == "false" and "dlx.weights" in winner.data.tags
    assert winner.data.metrics["test_accuracy"] > 0.8
    losers = [c for c in children if c.info.run_id != best_id]
    assert all(c.data.tags["dlx.scores_only"] == "true" and "dlx.weights" not in c.data.tags
               for c in losers)
    scores = [c.data.metrics["cv_mean_val_loss"] for c in children]
    assert winner.data.metrics["cv_mean_val_loss"] == min(scores)

    rows = list(csv.DictReader((dlx.cwd / out.split("all results in ")[1].split()[0]).open()))
    assert [r["run_id"] for r in rows][0] == best_id and len(rows) == 4
    assert not [k for k in rows[0] if k.startswith("system/")]
    assert {"optimizer.lr", "trainer.epochs", "fold1_val_loss", "fold3_val_loss"} <= set(rows[0])
    assert float(rows[0]["cv_mean_val_loss"]) == pytest.approx(
        sum(float(rows[0][f"fold{k}_val_loss"]) for k in (1, 2, 3)) / 3)

    # the winner's model reproduces its test metrics; a point that was not refit says why
    result = json.loads(dlx("eval", best_id, "--json").stdout)
    assert result["metrics"]["test_accuracy"] == winner.data.metrics["test_accuracy"]
    proc = dlx("eval", losers[0].info.run_id, check=False)
    assert proc.returncode == 1 and "cross-validation scores only" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    # `dlx runs --sweep` shows the swept params and the fold scores' mean and spread
    table = _table(dlx("runs", "--sweep", parent.info.run_id).stdout)
    assert {"optimizer.lr", "trainer.epochs", "cv_mean_val_loss", "cv_std_val_loss"} <= set(table[0])
