"""trainer.precision=auto keeps every seed preset's accuracy: each preset trained in fp32 and in
what `auto` picks on this machine (bf16 autocast for the conv presets on a CPU with native bf16,
fp32 elsewhere: dlx/training/device.py), on copies of its data in the real file formats. A preset
that `auto` leaves in fp32 must give the same numbers; one it moves to bf16 must score within 0.5
points of test accuracy (the autoencoder: its reconstruction error within 5%)."""

from __future__ import annotations

import pytest
from fixtures.datasets import make_cifar10, make_mnist

pytestmark = pytest.mark.slow

PRESETS = {  # preset -> (its data, the metric compared)
    "seed_linear_regression": (None, "test_r2"),
    "seed_logistic_regression": (None, "test_accuracy"),
    "seed_mlp_sigmoid": (None, "test_accuracy"),
    "seed_rnn": (None, "test_accuracy"),
    "seed_rnn_signal": (None, "test_accuracy"),
    "seed_mnist_cnn_keras": ("mnist", "test_accuracy"),
    "seed_mnist_cnn_torch": ("mnist", "test_accuracy"),
    "seed_autoencoder": ("mnist", "test_mse"),
    "seed_cifar10_cnn": ("cifar10", "test_accuracy"),
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_auto_precision_keeps_the_presets_accuracy(dlx, preset, tmp_path):
    from dlx.training.device import native_bf16

    kind, metric = PRESETS[preset]
    data = []
    if kind == "mnist":
        data = [f"dataset.root={make_mnist(tmp_path / 'data', n_train=2000, n_test=1000)}"]
    elif kind == "cifar10":
        data = [f"dataset.root={make_cifar10(tmp_path / 'data', n_train=1500, n_test=1000)}",
                "dataset.verify=false"]
    scores, tags = {}, {}
    for precision in ("fp32", "auto"):
        dlx.train(f"+experiment={preset}", *data, f"trainer.precision={precision}",
                  "trainer.checkpoint_every=0", f"tracking.experiment={precision}")
        (run,) = dlx.runs(precision)
        scores[precision], tags[precision] = run.data.metrics[metric], run.data.tags
    picked = tags["auto"]["dlx.precision"]
    assert tags["fp32"]["dlx.precision"] == "fp32"
    if preset in ("seed_mnist_cnn_keras", "seed_mnist_cnn_torch", "seed_cifar10_cnn"):
        assert picked == ("bf16" if native_bf16() else "fp32"), tags["auto"]["dlx.precision_why"]
    if picked == "fp32":
        assert scores["auto"] == scores["fp32"]
    elif metric == "test_mse":  # the autoencoder's reconstruction error: within 5% of fp32's
        assert abs(scores["auto"] - scores["fp32"]) <= 0.05 * scores["fp32"], scores
    else:
        assert abs(scores["auto"] - scores["fp32"]) <= 0.005, scores
    print(f"\n{preset}: fp32 {metric}={scores['fp32']:.4f}, auto ({picked}) {scores['auto']:.4f}")
