"""Sweeps that cost less than their points: shared epoch prefixes, successive halving, Optuna
with pruning, fused lr points. Each point still records what its own run records."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import numpy as np
import pytest
import torch

SMALL = ("model=mlp", "model.hidden_sizes=[32]", "trainer.device=cpu")


def _children(dlx):
    runs = dlx.runs()
    (parent,) = [r for r in runs if r.data.tags.get("dlx.kind") == "sweep"]
    return parent, [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]


def _history(dlx, run, key="val_loss"):
    return [(m.step, m.value) for m in sorted(dlx.client().get_metric_history(run.info.run_id, key),
                                               key=lambda m: m.step)]


# ------------------------------------------------------------------------ shared epoch prefixes
def test_points_that_differ_only_in_epochs_share_one_training_and_record_as_separate_runs(dlx, tmp_path):
    proc = dlx("train", "-m", *SMALL, "trainer.epochs=2,4", "optimizer.lr=0.01",
               "trainer.progress=false")  # (the model logged, as by default)
    assert proc.stdout.count("epoch 1:") == 1  # one training for both points
    parent, children = _children(dlx)
    by_epochs = {int(c.data.params["trainer.epochs"]): c for c in children}
    short, long = by_epochs[2], by_epochs[4]
    assert all(c.info.status == "FINISHED" for c in children)
    assert short.data.tags["dlx.shared_training"] == long.info.run_id
    assert long.data.tags["dlx.shared_training"] == long.info.run_id
    assert [s for s, _ in _history(dlx, short)] == [1, 2]
    assert [s for s, _ in _history(dlx, long)] == [1, 2, 3, 4]
    # one system-metrics monitor per training: the run that trains samples the machine
    assert any(k.startswith("system/") for k in long.data.metrics)
    assert not any(k.startswith("system/") for k in short.data.metrics)

    # exactly what a separate `dlx train` of the 2-epoch point records (same seed, CPU)
    alone = type(dlx)(tmp_path / "alone")
    alone.cwd.mkdir()
    alone("train", *SMALL, "trainer.epochs=2", "optimizer.lr=0.01", "trainer.progress=false")
    (own,) = alone.runs()
    tests = {k: v for k, v in own.data.metrics.items() if k.startswith("test_")}
    assert tests and all(short.data.metrics[k] == v for k, v in tests.items())
    assert _history(dlx, short) == _history(alone, own)
    assert short.data.params == {**own.data.params}
    # its own checkpoint, model and report, in its own output dir
    folder = Path(short.data.tags["dlx.output_dir"])
    state = torch.load(folder / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 2 and state["meta"]["run_id"] == short.info.run_id
    arts = {a.path for a in dlx.client().list_artifacts(short.info.run_id)}
    assert {"model", "classification_report.json", "config.yaml"} <= arts
    assert '"test_accuracy"' in dlx("eval", short.info.run_id, "--json").stdout


def test_sharing_says_why_when_it_cannot_and_can_be_switched_off(dlx, tmp_path):
    proc = dlx.train("-m", *SMALL, "trainer.epochs=2,3", "scheduler=cosine")
    assert "sweep: epoch prefixes are not shared: scheduler=cosine reads trainer.epochs" in proc.stdout
    assert proc.stdout.count("epoch 1:") == 2
    off = type(dlx)(tmp_path / "off")
    off.cwd.mkdir()
    proc = off.train("-m", *SMALL, "trainer.epochs=1,2", "hydra.launcher.share_prefixes=false")
    assert "share_prefixes=false" in proc.stdout and proc.stdout.count("epoch 1:") == 2
    _, children = _children(off)
    assert not any("dlx.shared_training" in c.data.tags for c in children)


# ---------------------------------------------------------------------------- successive halving
def test_halving_continues_the_best_third_from_their_checkpoints(dlx):
    proc = dlx.train("-m", "sweep=halving", *SMALL, "hydra.sweeper.min_resources=1",
                     "hydra.sweeper.max_resources=3", "dataset.batch_size=32,64",
                     "optimizer.lr=0.001,0.01,0.1")
    assert "point 8/8" in proc.stdout  # 6 candidates train 1 epoch, 2 go on to 3
    parent, children = _children(dlx)
    assert len(children) == 6 and all(c.info.status == "FINISHED" for c in children)
    rung = {c.info.run_id: int(c.data.tags["dlx.rung"]) for c in children}
    assert sorted(rung.values()) == [0, 0, 0, 0, 1, 1]
    for c in children:
        steps = [s for s, _ in _history(dlx, c, "train_loss")]
        if rung[c.info.run_id] == 1:  # one run, continued: epochs 2-3 after the checkpoint of 1
            assert steps == [1, 2, 3] and c.data.tags["dlx.resumed_from_epoch"] == "1"
        else:
            assert steps == [1]
    # the survivors were the best of rung 0 (lowest val_loss after 1 epoch)
    first = {c.info.run_id: _history(dlx, c)[0][1] for c in children}
    assert {r for r, k in rung.items() if k == 1} == set(sorted(first, key=first.get)[:2])
    assert rung[parent.data.tags["dlx.best_run_id"]] == 1  # the best of the last rung
    client = dlx.client()
    rows = list(csv.DictReader(Path(client.download_artifacts(parent.info.run_id, "results.csv",
                                                              str(dlx.cwd))).open()))
    assert [r["rung"] for r in rows][:2] == ["1", "1"] and rows[0]["rank"] == "1"


def test_halving_refuses_epochs_as_a_parameter(dlx):
    proc = dlx.train("-m", "sweep=halving", "trainer.epochs=1,2", check=False)
    assert proc.returncode == 1
    assert "sweep=halving spends epochs as its resource" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------------ Optuna with pruning
def test_optuna_prunes_trials_that_do_worse_and_ends_them_finished(dlx):
    import optuna

    assert int(optuna.__version__.split(".")[0]) >= 4
    dlx.train("-m", "sweep=optuna", *SMALL, "hydra.sweeper.n_trials=8", "trainer.epochs=4",
              "hydra.sweeper.pruner.n_startup_trials=2", "hydra.sweeper.pruner.n_warmup_steps=1")
    parent, children = _children(dlx)
    assert len(children) == 8 and all(c.info.status == "FINISHED" for c in children)
    assert len({c.data.params["optimizer.lr"] for c in children}) == 8  # 8 trials, 8 points
    best = min(children, key=lambda c: c.data.metrics["val_loss"])
    assert parent.data.tags["dlx.best_run_id"] == best.info.run_id
    pruned = [c for c in children if c.data.tags.get("dlx.pruned") == "true"]
    assert pruned, "no trial was pruned"
    for c in pruned:
        epoch = int(c.data.tags["dlx.pruned_epoch"])
        assert epoch < 4 and [s for s, _ in _history(dlx, c)] == list(range(1, epoch + 1))
    # the study knows them as pruned (a journal file in the sweep dir)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    journal = Path(parent.data.tags["dlx.output_dir"]) / "optuna.journal"
    study = optuna.load_study(study_name="dlx", storage=JournalStorage(JournalFileBackend(str(journal))))
    states = [t.state.name for t in study.trials]
    assert states.count("PRUNED") == len(pruned) and states.count("COMPLETE") == 8 - len(pruned)


@pytest.mark.slow
def test_optuna_trials_in_parallel_share_one_storage(dlx):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    dlx.train("-m", "sweep=optuna", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
              "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=6", *SMALL, "trainer.epochs=3")
    parent, children = _children(dlx)
    assert len(children) == 6 and all(c.info.status == "FINISHED" for c in children)
    assert len({c.data.params["optimizer.lr"] for c in children}) == 6


# ------------------------------------------------------------------------------ fused lr points
def _float64_bundle():
    from dlx.data.bundle import Spec, split

    rng = np.random.default_rng(0)
    x = rng.random((300, 6))
    y = (x[:, 0] + x[:, 1] > 1).astype(int) + (x[:, 2] > 0.5)
    data = split(x, y, Spec("multiclass", (6,), 3), 0.2, 0.1, 42)
    return type(data)(data.spec, *[(s[0].double(), s[1]) for s in (data.train, data.val, data.test)])


def test_fused_copies_train_exactly_as_separate_runs_in_float64():
    """3 lrs x 2 epochs x 2 batch sizes, with dropout: per-epoch metrics within 1e-9 and final
    weights within 1e-8 of separate `fit` runs."""
    from dlx.models import set_dropout
    from dlx.models.mlp import MLP
    from dlx.sweep import fused
    from dlx.training.fit import fit
    from dlx.training.regularizers import EarlyStopping
    from dlx.training.schedulers import Schedule

    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        data = _float64_bundle()
        for batch_size in (16, 32):
            lrs = (0.01, 0.05, 0.2)
            separate = []
            for lr in lrs:
                torch.manual_seed(7)
                model = MLP(data.spec, [16, 8])
                set_dropout(model, 0.3)
                history = fit(model, torch.optim.Adam(model.parameters(), lr=lr), data, 2,
                              batch_size, 7, early_stopping=EarlyStopping("val_loss"))
                separate.append((history, model))
            torch.manual_seed(7)
            base = MLP(data.spec, [16, 8])
            set_dropout(base, 0.3)
            copies = []
            for lr in lrs:
                m = copy.deepcopy(base)
                copies.append(fused.Copy(m, torch.optim.Adam(m.parameters(), lr=lr), {
                    "penalty": None, "early_stopping": EarlyStopping("val_loss"),
                    "schedule": Schedule(), "grad_clip": 0.0}))
            fused.fit(copies, data, 2, batch_size, 7)
            for (history, model), c in zip(separate, copies):
                assert len(c.history) == len(history) == 2
                for mine, theirs in zip(c.history, history):
                    for key, value in theirs.items():
                        assert abs(mine[key] - value) <= 1e-9, (batch_size, key)
                for a, b in zip(model.state_dict().values(), c.model.state_dict().values()):
                    assert (a - b).abs().max().item() <= 1e-8
    finally:
        torch.set_default_dtype(default)


def test_fused_sweep_records_each_point_as_its_own_run(dlx, tmp_path):
    dlx.train("-m", *SMALL, "trainer.epochs=2", "optimizer.lr=0.01,0.05",
              "regularizer=[dropout]", "hydra.launcher.fuse=true")
    _, children = _children(dlx)
    assert len(children) == 2 and all(c.data.tags["dlx.fused_with"] == "2" for c in children)
    alone = type(dlx)(tmp_path / "alone")
    alone.cwd.mkdir()
    alone.train(*SMALL, "trainer.epochs=2", "optimizer.lr=0.05", "regularizer=[dropout]")
    (own,) = alone.runs()
    (fused_point,) = [c for c in children if c.data.params["optimizer.lr"] == "0.05"]
    for key in ("test_loss", "test_accuracy"):  # float32: the same up to rounding
        assert fused_point.data.metrics[key] == pytest.approx(own.data.metrics[key], rel=1e-4)
    assert [s for s, _ in _history(dlx, fused_point)] == [1, 2]


def test_fuse_true_where_copies_cannot_stack_is_one_line(dlx):
    proc = dlx.train("-m", "model=rnn", "dataset=synthetic_sequence", "trainer.epochs=1",
                     "optimizer.lr=0.01,0.02", "hydra.launcher.fuse=true", check=False)
    assert proc.returncode == 1
    assert "cannot stack these points: recurrent layers have no vmap batching rule" in proc.stderr
