"""Regularizers as `dlx train` trains with them (dlx.run.train, in this process): l1 zeroes
weights, l2 shrinks them, dropout sites follow the regularizer, early stopping stops an
overfitting run and logs the best epoch's model; bad values are one line from the real CLI."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn


def _sparse_csv(path: Path) -> Path:
    """80 rows x 20 features; y = 3*x0 - 2*x1 + N(0, 1): 18 of the 20 features are noise."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 20))
    y = 3 * x[:, 0] - 2 * x[:, 1] + rng.standard_normal(80)
    header = ",".join([f"x{i}" for i in range(20)] + ["label"])
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", header=header, comments="")
    return path


def _weights(run) -> torch.Tensor:
    state = torch.load(Path(run.data.tags["dlx.output_dir"]) / "checkpoints" / "last.pt",
                       weights_only=True)
    return state["model"]["fc.weight"].flatten()


@pytest.mark.slow
def test_l1_zeroes_most_weights_and_l2_shrinks_the_norm(dlx, tmp_path):
    data = _sparse_csv(tmp_path / "sparse.csv")
    linear = ("dataset=csv", f"dataset.path={data}", "dataset.task=regression", "model=linear",
              "optimizer=sgd", "optimizer.lr=0.01", "trainer.epochs=100", "trainer.device=cpu",
              "trainer.monitor=val_r2", "trainer.monitor_mode=max",
              "trainer.checkpoint_every=1000")  # one checkpoint, at the end: the weights read below
    dlx.train_here(*linear, "regularizer=none")
    dlx.train_here(*linear, "regularizer=[l1]", "regularizer.l1.weight=1.0")
    dlx.train_here(*linear, "regularizer=[l2]", "regularizer.l2.weight=0.2")
    runs = {next((k for k in ("l1", "l2") if f"regularizer.{k}.weight" in r.data.params), "none"): r
            for r in dlx.runs()}
    w = {k: _weights(r) for k, r in runs.items()}

    def sparsity(v):
        return (v.abs() < 0.02).float().mean().item()

    # l1: the noise features' weights go to ~0, the two real ones survive
    assert sparsity(w["none"]) <= 0.2, w["none"]
    assert sparsity(w["l1"]) >= 0.85, w["l1"]
    assert w["l1"][0] > 1.5 and w["l1"][1] < -0.8, w["l1"]
    # l2: same seed, smaller norm
    assert w["l2"].norm() < 0.95 * w["none"].norm(), (w["l2"].norm(), w["none"].norm())
    assert runs["none"].data.metrics["test_r2"] > 0.7


def _dropout_modules(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]


def _dropout_active(model, x) -> bool:
    """Two forward passes differ only where dropout is active."""
    return not torch.equal(model(x), model(x))


def test_dropout_and_early_stopping_together(dlx):
    """regularizer=[dropout,early_stopping]: dropout at p in train mode only; an overfitting run
    stops early and the logged model is the best epoch's."""

    from dlx.data import registry as loader
    from dlx.training.evaluation import evaluate

    # lr=0.01 makes the MLP overfit the small digits train split within a few epochs
    dlx.train_here("model=mlp", "optimizer.lr=0.01", "trainer.epochs=100", "trainer.device=cpu",
                   "regularizer=[dropout,early_stopping]", "regularizer.dropout.p=0.3",
                   "regularizer.early_stopping.patience=3", "trainer.checkpoint_every=0",
                   log_model=True)
    (run,) = dlx.runs()
    model = dlx.model(run)

    # dropout: every site at p; active in train mode, off in eval mode
    x = torch.rand(64, 1, 8, 8)
    drops = _dropout_modules(model)
    assert drops and all(m.p == 0.3 for m in drops)
    assert _dropout_active(model.train(), x) and not _dropout_active(model.eval(), x)

    # early stopping: before max epochs, `patience` epochs after the best one
    history = [m.value for m in sorted(dlx.client().get_metric_history(run.info.run_id, "val_loss"),
                                       key=lambda m: m.step)]
    best, stopped = int(run.data.metrics["best_epoch"]), int(run.data.metrics["stopped_epoch"])
    assert stopped < 100 and len(history) == stopped
    assert best == 1 + int(np.argmin(history)) and stopped == best + 3

    # the logged model is the best epoch's: its val loss is the best epoch's logged val_loss
    # the run's resolved config, as logged with it
    cfg = OmegaConf.load(Path(run.info.artifact_uri.removeprefix("file://")) / "config.yaml")
    data = loader.load(cfg.dataset)
    val, _ = evaluate(model, *data.val, data.spec.task, cfg.dataset.batch_size, data.transform)
    assert val["loss"] == pytest.approx(history[best - 1], rel=1e-5)
    assert val["loss"] < history[-1]


def test_without_the_dropout_regularizer_there_is_no_dropout(digits_run):
    dlx, run = digits_run  # an MLP trained with the default regularizer=[none]
    assert not any(key.startswith("regularizer.dropout") for key in run.data.params)
    model = dlx.model(run)
    drops = _dropout_modules(model)
    assert drops and all(m.p == 0.0 for m in drops)  # the sites exist, at p=0
    assert not _dropout_active(model.train(), torch.rand(64, 1, 8, 8))


def test_bad_regularizer_values_are_one_line_naming_each_key(dlx):
    proc = dlx.train("model=mlp", "regularizer=[dropout,early_stopping]", "regularizer.dropout.p=1.5",
                     "regularizer.early_stopping.patience=-1", "trainer.epochs=1", check=False)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("dlx: error: ") and ("regularizer.dropout.p=1.5 must be in [0, 1); "
                                                "regularizer.early_stopping.patience=-1 must be") in line
    assert dlx.runs() == []


# ---------------------------------------------------------------- the pieces, in-process (fast)
def _net():
    from dlx.data.bundle import Spec
    from dlx.models.mlp import MLP

    return MLP(Spec("multiclass", (4,), 3), hidden_sizes=[8], batchnorm=True)


def test_penalties_cover_weights_not_biases_or_norm_params():
    from dlx.training import regularizers

    net = _net()
    cfg = OmegaConf.create({"l1": {"weight": 0.5, "include_bias": False},
                            "l2": {"weight": 0.25, "decoupled": False, "include_bias": False}})
    regs = regularizers.build(cfg, net, "val_loss", "min")
    weights = [p for p in net.parameters() if p.dim() >= 2]
    want = sum(0.5 * p.abs().sum() + 0.25 * p.pow(2).sum() for p in weights)
    assert torch.allclose(regs.penalty(), want)
    assert len(_dropout_modules(net)) == 1 and _dropout_modules(net)[0].p == 0.0


def test_decoupled_l2_gives_adamw_decayed_weights_and_undecayed_biases():
    from dlx.training import regularizers

    net = _net()
    cfg = OmegaConf.create({"l2": {"weight": 0.1, "decoupled": True, "include_bias": False}})
    regs = regularizers.build(cfg, net, "val_loss", "min")
    assert regs.penalty is None
    opt = torch.optim.AdamW(regs.params, lr=0.01)
    decayed, other = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and all(p.dim() >= 2 for p in decayed["params"])
    assert other["weight_decay"] == 0.0 and all(p.dim() == 1 for p in other["params"])
    assert len(decayed["params"]) + len(other["params"]) == len(list(net.parameters()))


def test_early_stopping_patience_min_delta_and_mode():
    from dlx.training.regularizers import EarlyStopping

    net = nn.Linear(2, 1)
    es = EarlyStopping("val_accuracy", "max", patience=2, min_delta=0.01, restore_best=True)
    stops = []
    for epoch, acc in enumerate([0.5, 0.7, 0.705, 0.69, math.nan, 0.9], 1):
        with torch.no_grad():
            net.weight.fill_(epoch)
        es.update(epoch, {"val_accuracy": acc}, net)
        stops.append(es.should_stop)
    # 0.705 is not better than 0.7 by more than min_delta; two epochs without improvement stop
    assert stops == [False, False, False, True, True, False]
    assert es.best_epoch == 6 and es.best == 0.9
    es2 = EarlyStopping("val_loss", "min", patience=1, restore_best=True)
    for epoch, loss in enumerate([1.0, 0.5, 0.6], 1):
        with torch.no_grad():
            net.weight.fill_(epoch)
        es2.update(epoch, {"val_loss": loss}, net)
    assert es2.should_stop and es2.restore(net) == 2 and torch.all(net.weight == 2)
