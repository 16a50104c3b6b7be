"""The sweep layer's group training (dlx.sweep.group.train_group): the points that share one
training, handed over explicitly (as dlx's launchers hand them), each ending as its own run
would: a point's epochs as milestones of the longest, lr points as networks of their own (one
after the other, or stacked in the one loop), cross-validated folds shared the same way."""

from __future__ import annotations

import pytest
from fixtures.runs import in_process, point

SMALL = ("model=mlp", "model.hidden_sizes=[32]", "trainer.device=cpu", "trainer.checkpoint_every=0")
GRID = [(epochs, lr) for lr in (0.01, 0.05) for epochs in (1, 3)]


def _grid(dlx, *extra):
    return [point(dlx, *SMALL, f"trainer.epochs={e}", f"optimizer.lr={lr}", *extra) for e, lr in GRID]


def test_a_group_of_epochs_and_lrs_gives_each_point_what_its_own_run_gives(dlx):
    from dlx.run import train
    from dlx.sweep.group import train_group

    with in_process():
        grouped = train_group(_grid(dlx, "regularizer=[dropout]"), fuse="false")
    alone = []
    for p in _grid(dlx, "regularizer=[dropout]"):
        with in_process():
            alone.append(train(p.cfg, p.runtime))
    for (epochs, lr), g, a in zip(GRID, grouped, alone):
        assert g.epochs == a.epochs == epochs
        assert g.test == a.test and g.objective == a.objective, (epochs, lr)  # exact, on the CPU
        assert g.run_id != a.run_id
    runs = {r.info.run_id: r for r in dlx.runs()}
    assert len(runs) == 8 and all(r.info.status == "FINISHED" for r in runs.values())
    for g in grouped:  # the 1-epoch points are milestones of the 3-epoch ones
        steps = dlx.client().get_metric_history(g.run_id, "val_loss")
        assert sorted(m.step for m in steps) == list(range(1, g.epochs + 1))
        trained_by = runs[g.run_id].data.tags["dlx.shared_training"]
        assert runs[trained_by].data.params["trainer.epochs"] == "3"


class Calls:
    """A fit callback that writes down what it hears."""

    def __init__(self):
        self.calls = []

    def on_fit_start(self, loop):
        self.calls.append("fit")

    def on_epoch_start(self, epoch, epochs, steps):
        self.calls.append(f"start {epoch}/{epochs}")

    def on_batch_end(self, step):
        self.calls.append("batch")

    def on_epoch_end(self, epoch, metrics):
        self.calls.append(f"end {epoch}")


def test_stacked_networks_hear_every_callback_a_plain_run_hears(dlx):
    from dlx.sweep.group import train_group

    plain, stacked = Calls(), Calls()
    with in_process():
        (one,) = train_group([point(dlx, *SMALL, "trainer.epochs=2")], [plain])
        two = train_group([point(dlx, *SMALL, "trainer.epochs=2", f"optimizer.lr={lr}")
                           for lr in (0.01, 0.02)], [stacked], fuse="true")
    assert plain.calls == stacked.calls  # the progress bar's epoch starts, batches and ends
    assert plain.calls.count("batch") > 2 and plain.calls[:2] == ["fit", "start 1/2"]
    tags = {r.info.run_id: r.data.tags for r in dlx.runs()}
    assert all(tags[r.run_id]["dlx.fused_with"] == "2" for r in two)
    assert "dlx.fused_with" not in tags[one.run_id]


def test_a_stacked_network_that_diverges_fails_only_its_own_point(dlx):
    from dlx.errors import TrainingError
    from dlx.sweep.group import train_group

    with in_process():
        good, bad = train_group([point(dlx, *SMALL, "trainer.epochs=2", "optimizer=sgd",
                                       f"optimizer.lr={lr}") for lr in (0.01, 1e30)], fuse="true")
    assert isinstance(bad, TrainingError) and "loss became non-finite" in str(bad)
    assert good.test["test_accuracy"] > 0.1
    status = sorted(r.info.status for r in dlx.runs())
    assert status == ["FAILED", "FINISHED"]


def test_train_raises_the_error_of_its_one_point(dlx):
    from dlx.errors import TrainingError
    from dlx.run import train

    p = point(dlx, *SMALL, "trainer.epochs=1", "optimizer=sgd", "optimizer.lr=1e30")
    with in_process(), pytest.raises(TrainingError, match="lower optimizer.lr"):
        train(p.cfg, p.runtime)
    (run,) = dlx.runs()
    assert run.info.status == "FAILED"


def test_cross_validated_points_share_each_folds_training_and_score_as_their_own_runs(dlx):
    """Fold k of a network trained once to 3 epochs gives the 1-epoch point's fold-k score too:
    the same numbers as each point cross-validated on its own (its folds in this process, the
    group's in two worker processes)."""
    from dlx.sweep.group import train_group

    cv = ("trainer.cv_folds=3", "trainer.cv_refit=none")
    with in_process():
        grouped = train_group(_grid(dlx, *cv, "trainer.cv_workers=2"), fuse="false")
    alone = []
    for p in _grid(dlx, *cv, "trainer.cv_workers=1"):
        with in_process():
            alone += train_group([p])  # a cross-validated point on its own
    client = dlx.client()
    for (epochs, lr), g, a in zip(GRID, grouped, alone):
        assert g.objective == a.objective, (epochs, lr)  # the folds' mean val_loss, exact
        folds = [[m.value for m in sorted(client.get_metric_history(r.run_id, "fold_val_accuracy"),
                                          key=lambda m: m.step)] for r in (g, a)]
        assert folds[0] == folds[1] and len(folds[0]) == 3, (epochs, lr)
    assert len({g.objective for g in grouped}) == 4  # four different points
    runs = dlx.runs()
    assert len(runs) == 8 and all(r.info.status == "FINISHED" for r in runs)
    assert all(r.data.tags["dlx.scores_only"] == "true" for r in runs)  # cv_refit=none
