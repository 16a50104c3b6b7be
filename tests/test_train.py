"""`dlx train` end to end: accuracy on real data, what the MLflow store holds, reproducibility,
multirun nesting, where runs are recorded, and how a run ends: FINISHED, FAILED (a diverging
run) or KILLED (Ctrl-C, SIGTERM; exit 130)."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch


@pytest.mark.spawn  # also run with a new interpreter per command (make test-spawn)
def test_default_cnn_on_digits_is_accurate_and_fully_recorded(dlx):
    # the README's `make train`: default CNN on scikit-learn's digits, model logged
    proc = dlx("train", "trainer.progress=false")
    (run,) = dlx.runs()
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_accuracy"] >= 0.97, run.data.metrics
    assert run.info.run_id in proc.stdout

    # the flattened resolved config as params; tags that lead back to the Hydra output dir
    params = run.data.params
    assert params["model._target_"] == "dlx.models.cnn.CNN"
    assert params["optimizer._target_"] == "torch.optim.Adam"
    assert params["dataset.name"] == "digits"
    assert params["trainer.epochs"] == "30"
    tags = run.data.tags
    assert (tags["dlx.model"], tags["dlx.dataset"], tags["dlx.optimizer"]) == ("cnn", "digits", "adam")
    out_dir = Path(tags["dlx.output_dir"])
    assert (out_dir / ".hydra" / "config.yaml").is_file()
    assert out_dir.name == run.info.run_name

    # one metric point per epoch, step = epoch
    client = dlx.client()
    for key in ("train_loss", "val_loss", "val_accuracy"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == list(range(1, 31)), key
    for key in ("test_loss", "test_accuracy", "test_f1_macro"):
        assert key in run.data.metrics

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "overrides.txt", "classification_report.json"} <= artifacts
    figures = {a.path: a for a in client.list_artifacts(run.info.run_id, "plots")}
    assert set(figures) == {"plots/learning_curves.png", "plots/confusion_matrix.png"}
    from PIL import Image

    for name, size in (("learning_curves", (900, 340)), ("confusion_matrix", (600, 600))):
        png = client.download_artifacts(run.info.run_id, f"plots/{name}.png", str(dlx.cwd))
        image = Image.open(png)
        assert image.size == size, (name, image.size)
        assert len(set(image.convert("L").getdata())) > 10  # drawn on, not blank

    # the logged model loads back and predicts the digits
    from sklearn.datasets import load_digits

    model = dlx.model(run)
    digits = load_digits()
    x = torch.tensor(digits.images[:, None] / 16.0, dtype=torch.float32)
    pred = model(x).argmax(1).numpy()
    assert (pred == digits.target).mean() > 0.97


def test_same_seed_gives_identical_metrics(dlx, digits_run):
    # the session's digits MLP (`model=mlp trainer.epochs=3 trainer.device=cpu`), run again here
    first, a = digits_run
    dlx.train("model=mlp", "trainer.epochs=3", "trainer.device=cpu")
    (b,) = dlx.runs()
    for key in ("train_loss", "val_loss", "val_accuracy"):
        ha = [m.value for m in sorted(first.client().get_metric_history(a.info.run_id, key),
                                      key=lambda m: m.step)]
        hb = [m.value for m in sorted(dlx.client().get_metric_history(b.info.run_id, key),
                                      key=lambda m: m.step)]
        assert ha == hb and len(ha) == 3, key
    for key in ("test_loss", "test_accuracy"):
        assert a.data.metrics[key] == b.data.metrics[key], key


def test_linear_regression_recovers_weight_and_bias(dlx):
    dlx.train_here("model=linear", "dataset=synthetic_linear", "optimizer=sgd", "optimizer.lr=0.1",
                   "trainer.epochs=300", "trainer.monitor=val_r2", "trainer.monitor_mode=max",
                   "trainer.checkpoint_every=0", log_model=True)
    (run,) = dlx.runs()

    model = dlx.model(run)
    w, b = model.fc.weight.item(), model.fc.bias.item()
    assert abs(w - 2) < 0.1 and abs(b - 1) < 0.1, (w, b)
    assert run.data.metrics["test_r2"] > 0.9


def test_logistic_regression_separates_the_synthetic_classes(dlx):
    dlx.train_here("model=logistic", "dataset=synthetic_logistic", "dataset.n_samples=400",
                   "optimizer=sgd", "optimizer.lr=0.5", "trainer.epochs=100",
                   "trainer.checkpoint_every=0")
    (run,) = dlx.runs()
    assert run.data.metrics["test_accuracy"] >= 0.9


@pytest.mark.spawn  # also run with a new interpreter per command (make test-spawn)
def test_multirun_nests_four_children_under_one_parent(dlx):
    proc = dlx.train("-m", "optimizer=sgd,adam", "optimizer.lr=0.01,0.001", "trainer.epochs=2")
    runs = dlx.runs()
    parents = [r for r in runs if r.data.tags.get("dlx.kind") == "sweep"]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4 and len(runs) == 5
    assert all(c.info.status == "FINISHED" for c in children)
    assert parent.info.status == "FINISHED"
    combos = {(c.data.params["optimizer._target_"], c.data.params["optimizer.lr"]) for c in children}
    assert combos == {(o, lr) for o in ("torch.optim.SGD", "torch.optim.Adam") for lr in ("0.01", "0.001")}
    # the parent names the child with the lowest val_loss (trainer.monitor's default)
    best = min(children, key=lambda c: c.data.metrics["val_loss"])
    assert parent.data.tags["dlx.best_run_id"] == best.info.run_id
    assert parent.data.metrics["best_val_loss"] == pytest.approx(best.data.metrics["val_loss"])
    assert "sweep.overrides" in parent.data.params
    assert best.info.run_id in proc.stdout
    # each job has its own Hydra output dir, tagged on its run
    dirs = {c.data.tags["dlx.output_dir"] for c in children}
    assert len(dirs) == 4 and all(Path(d).is_dir() for d in dirs)


def test_two_runs_get_distinct_output_dirs(dlx):
    dlx.train("model=linear", "trainer.epochs=1")
    dlx.train("model=linear", "trainer.epochs=1")
    dirs = {r.data.tags["dlx.output_dir"] for r in dlx.runs()}
    assert len(dirs) == 2


def test_tracking_uri_override_points_at_another_store(new_dlx, tmp_path):
    dlx = new_dlx
    other = tmp_path / "elsewhere.db"
    dlx.train("model=linear", "trainer.epochs=1", f"tracking.uri=sqlite:///{other}",
              "tracking.experiment=mine")
    assert other.exists() and not (dlx.cwd / "mlflow.db").exists()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{other}")
    exp = client.get_experiment_by_name("mine")
    assert len(client.search_runs([exp.experiment_id])) == 1


# ------------------------------------------------------------------------------ how a run ends
@pytest.mark.spawn  # also run with a new interpreter per command (make test-spawn)
def test_diverging_training_ends_the_run_failed(dlx):
    proc = dlx.train("optimizer=sgd", "optimizer.lr=1e6", "trainer.epochs=3", check=False)
    assert proc.returncode == 1
    assert "learning rate is probably too high" in proc.stderr
    (run,) = dlx.runs()
    assert run.info.status == "FAILED"


@pytest.mark.spawn  # also run with a new interpreter per command (make test-spawn)
def test_interrupt_ends_the_run_killed_with_exit_130(dlx):
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlx", "train", "trainer.epochs=500", "trainer.progress=false",
         "tracking.log_model=false"],
        cwd=dlx.cwd, env=dlx.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # wait until training is under way
        if line.startswith("epoch 2:"):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "KILLED" in err
    (run,) = dlx.runs()
    assert run.info.status == "KILLED"


def test_sigterm_also_ends_the_run_killed(dlx):
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlx", "train", "trainer.epochs=500", "trainer.progress=false",
         "tracking.log_model=false", "model=mlp"],
        cwd=dlx.cwd, env=dlx.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("epoch 2:"):
            break
    proc.terminate()
    proc.communicate(timeout=60)
    time.sleep(0.1)
    assert proc.returncode == 130
    (run,) = dlx.runs()
    assert run.info.status == "KILLED"
