"""Using a finished run: `dlx eval` reproduces its test metrics, `dlx explain` logs saliency maps
or permutation importances, `dlx export` registers an MLflow model, and `dlx.load_model` gives the
trained network back (weights, no pickle). `dlx predict` is in test_predict.py."""

import csv
import json
from pathlib import Path


def test_eval_reproduces_the_logged_test_metrics_exactly(digits_run):
    dlx, run = digits_run
    result = json.loads(dlx("eval", run.info.run_id, "--json").stdout)
    assert result["n"] == 360
    for key in ("test_accuracy", "test_loss", "test_f1_macro"):
        assert result["metrics"][key] == run.data.metrics[key], key
    assert len(result["confusion_matrix"]["matrix"]) == 10
    # by run name and by Hydra run dir too, with the printed tables
    by_name = dlx("eval", run.info.run_name).stdout
    assert f"test_accuracy={run.data.metrics['test_accuracy']:.4f}" in by_name
    assert "classification report" in by_name and "confusion matrix" in by_name
    by_dir = json.loads(dlx("eval", run.data.tags["dlx.output_dir"], "--json").stdout)
    assert by_dir["metrics"] == result["metrics"]


def test_eval_log_attaches_results_to_the_run(digits_run):
    dlx, run = digits_run
    dlx("eval", run.info.run_id, "--split", "val", "--log")
    after = dlx.client().get_run(run.info.run_id)
    assert after.data.metrics["eval_val_accuracy"] == run.data.metrics["val_accuracy"]
    assert "eval_val.json" in {a.path for a in dlx.client().list_artifacts(run.info.run_id)}


def test_bad_run_references_are_one_line(digits_run):
    dlx, _ = digits_run
    proc = dlx("eval", "0" * 32, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("dlx: error: no run")
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = dlx("eval", "no-such-run-name", check=False)
    assert proc.returncode == 1 and "see `dlx runs`" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_eval_is_exact_for_a_channels_last_cnn_too(dlx):
    """The default CNN trains in channels_last; its logged weights are rebuilt in that layout."""
    dlx.train_here("trainer.epochs=2", "trainer.device=cpu", "trainer.checkpoint_every=0",
                   log_model=True)
    (run,) = dlx.runs()
    assert run.data.tags["dlx.channels_last"] == "true"
    result = json.loads(dlx("eval", run.info.run_id, "--json").stdout)
    for key in ("test_accuracy", "test_loss", "test_f1_macro"):
        assert result["metrics"][key] == run.data.metrics[key], key


# ------------------------------------------------------------------------------------ explain
def test_explain_image_run_logs_a_saliency_grid(digits_run):
    dlx, run = digits_run
    out = dlx("explain", run.info.run_id).stdout
    assert "gradient saliency" in out
    arts = {a.path for a in dlx.client().list_artifacts(run.info.run_id, "explain")}
    assert arts == {"explain/saliency.png"}
    from PIL import Image

    png = Path(run.data.tags["dlx.output_dir"]) / "explain" / "saliency.png"
    w, h = Image.open(png).size
    assert w > 400 and h > 100  # 8 inputs over 8 maps


def test_explain_tabular_run_ranks_features_by_permutation_importance(dlx):
    dlx.train_here("model=logistic", "dataset=synthetic_logistic", "dataset.n_samples=400",
                   "optimizer=sgd", "optimizer.lr=0.5", "trainer.epochs=60",
                   "trainer.checkpoint_every=0", log_model=True)
    (run,) = dlx.runs()
    dlx("explain", run.info.run_id)  # the logged weights load without trusting any pickle
    folder = Path(run.data.tags["dlx.output_dir"]) / "explain"
    rows = list(csv.DictReader((folder / "feature_importance.csv").open()))
    assert {r["feature"] for r in rows} == {"x0", "x1"}
    # the label is x0 + x1 > 1: shuffling either feature costs accuracy
    assert all(float(r["importance_mean"]) > 0.1 for r in rows)
    arts = {a.path for a in dlx.client().list_artifacts(run.info.run_id, "explain")}
    assert arts == {"explain/feature_importance.csv", "explain/feature_importance.png"}


# ------------------------------------------------------------------------- export, load_model
def test_load_model_and_export_give_the_same_network(digits_run):
    """dlx.load_model (weights, no pickle) and `dlx export --format pt2` (the bare network as an
    MLflow pt2 model that mlflow.pytorch.load_model reads) give the trained network; exporting
    leaves the run as it was."""
    import mlflow
    import torch

    import dlx as dlx_package

    dlx, run = digits_run
    model = dlx_package.load_model(run.info.run_id, dlx.uri)
    assert not model.training
    x = torch.rand(5, 1, 8, 8)
    proc = dlx("export", run.info.run_id, "--format", "pt2")
    assert proc.stderr == ""  # no warning of torch.export's
    after = dlx.client().get_run(run.info.run_id)
    uri = after.data.tags["dlx.model_uri"]
    assert uri in proc.stdout and uri.startswith("models:/")
    assert (after.info.status, after.info.end_time) == (run.info.status, run.info.end_time)
    mlflow.set_tracking_uri(dlx.uri)
    exported = mlflow.pytorch.load_model(uri)
    with torch.no_grad():
        torch.testing.assert_close(exported(x), model(x))
    bad = dlx("export", run.info.run_id, "--format", "onnx", check=False)
    assert bad.returncode == 1 and "--format onnx is not one of pyfunc, pt2, pickle" in bad.stderr
