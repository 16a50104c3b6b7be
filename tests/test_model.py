"""The model zoo: every model trains through `dlx train` on small real data and beats a trivial
baseline (majority class, or the mean image for autoencoders) by the margin each test states;
padding never changes a sequence model's logits; pretrained weights load from a local file only;
bad model configs fail before training with one clear line.

Sweeps (`-m model=a,b,c`) train several models in one process: each is its own MLflow run."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from dlx.data.bundle import Spec
from dlx.errors import ConfigError


# ------------------------------------------------------------------------------ helpers
@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """In-process models run on one thread here too (restored after this module)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def compose(*overrides: str):
    """The composed config `dlx train OVERRIDES` would run (same conf/ tree, same schemas)."""
    from fixtures.runs import compose as compose_run

    return compose_run(*overrides)


def splits(*overrides: str):
    """(train, test) tensors of the dataset that `overrides` select, as dlx splits it."""
    from dlx.data import registry as loader

    data = loader.load(compose(*overrides).dataset)
    return data.train, data.test


def majority_accuracy(*overrides: str) -> float:
    _, (_, y) = splits(*overrides)
    y = y[:, 0].long() if y.dim() == 2 else y
    return float(torch.bincount(y).max()) / len(y)


def by_model(runs) -> dict:
    """The jobs of a sweep by their `model=` choice (the parent run has none)."""
    return {r.data.tags["dlx.model"]: r for r in runs if r.data.tags.get("dlx.kind") != "sweep"}


def artifacts(dlx, run) -> set[str]:
    return {a.path for a in dlx.client().list_artifacts(run.info.run_id)}


def artifact_json(dlx, run, path: str) -> dict:
    local = dlx.client().download_artifacts(run.info.run_id, path, str(dlx.cwd))
    with open(local) as f:
        return json.load(f)


# ------------------------------------------------------------------------------ images
def test_image_models_and_autoencoders_train_on_digits(dlx):
    dlx.train("-m", "model=mlp,cnn,cnn_cifar,autoencoder,conv_autoencoder", "trainer.epochs=15",
              "trainer.checkpoint_every=0")
    runs = by_model(dlx.runs())
    assert set(runs) == {"mlp", "cnn", "cnn_cifar", "autoencoder", "conv_autoencoder"}
    assert all(r.info.status == "FINISHED" for r in runs.values())

    # classifiers: the majority class of digits' test split is ~10%
    baseline = majority_accuracy()
    assert baseline < 0.15
    accuracy = {k: runs[k].data.metrics["test_accuracy"] for k in ("mlp", "cnn", "cnn_cifar")}
    assert accuracy["cnn"] >= 0.97, accuracy  # the source's digits CNN
    assert accuracy["cnn_cifar"] >= baseline + 0.75, accuracy  # the CIFAR CNN adapts to 1x8x8
    assert accuracy["mlp"] >= baseline + 0.75, accuracy
    assert runs["cnn_cifar"].data.params["model.channels"] == "[32, 64, 128]"
    cnn = runs["cnn"]
    assert {"classification_report.json", "confusion_matrix.json"} <= artifacts(dlx, cnn)
    cm = artifact_json(dlx, cnn, "confusion_matrix.json")
    matrix = np.array(cm["matrix"])
    assert matrix.shape == (10, 10) and cm["labels"] == [str(i) for i in range(10)]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(cnn.data.metrics["test_accuracy"])
    assert "test_f1_macro" in cnn.data.metrics

    # autoencoders: reconstruction MSE against the mean training image's
    (x_train, _), (x_test, _) = splits()
    mean_image_mse = float((x_test - x_train.mean(0)).pow(2).mean())
    dense, conv = runs["autoencoder"], runs["conv_autoencoder"]
    assert dense.data.metrics["test_mse"] < 0.5 * mean_image_mse, (dense.data.metrics, mean_image_mse)
    assert conv.data.metrics["test_mse"] < 0.6 * mean_image_mse, (conv.data.metrics, mean_image_mse)
    for r in (dense, conv):
        assert "test_accuracy" not in r.data.metrics and "train_accuracy" not in r.data.metrics
        assert "plots/reconstructions.png" in {a.path for a in dlx.client().list_artifacts(
            r.info.run_id, "plots")}
        assert "classification_report.json" not in artifacts(dlx, r)
    png = dlx.client().download_artifacts(dense.info.run_id, "plots/reconstructions.png",
                                        str(dlx.cwd))
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_mlp_options_build_what_they_say():
    from torch import nn

    from dlx.models.mlp import MLP

    spec = Spec("multiclass", (1, 8, 8), 10)
    m = MLP(spec, hidden_sizes=[32, 16, 8], activation="tanh", batchnorm=True)
    linears = [layer for layer in m.net if isinstance(layer, nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linears] == \
        [(64, 32), (32, 16), (16, 8), (8, 10)]
    assert sum(isinstance(layer, nn.Tanh) for layer in m.net) == 3
    assert [layer.num_features for layer in m.net if isinstance(layer, nn.BatchNorm1d)] == [32, 16, 8]
    drop = [layer for layer in m.net if isinstance(layer, nn.Dropout)]
    assert len(drop) == 3 and all(d.p == 0.0 for d in drop)  # the dropout regularizer's sites
    assert m(torch.rand(5, 1, 8, 8)).shape == (5, 10)
    assert not any(isinstance(layer, nn.BatchNorm1d) for layer in MLP(spec, [32]).net)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_cnns_adapt_to_the_input_shape(shape):
    from torch import nn

    from dlx.models.cnn import CNN

    spec = Spec("multiclass", shape, 10)
    for channels in ([32], [32, 64], [32, 64, 128]):
        m = CNN(spec, channels=channels)
        assert m.features[0].in_channels == shape[0]
        assert m(torch.rand(2, *shape)).shape == (2, 10)
    m = CNN(spec, channels=[8, 16], kernel_size=[5, 3], pool="avg", batchnorm=True)
    convs = [layer for layer in m.features if isinstance(layer, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(5, 5), (3, 3)]
    assert sum(isinstance(layer, nn.AvgPool2d) for layer in m.features) == 2
    assert sum(isinstance(layer, nn.BatchNorm2d) for layer in m.features) == 2
    assert m(torch.rand(2, *shape)).shape == (2, 10)


def test_the_keras_preset_builds_the_source_network_exactly():
    # Keras' model.summary() of the source's MNIST CNN: Conv2D(32, 3x3, 'valid') 320 + Dense(128)
    # 692,352 + Dense(10) 1,290 = 693,962 parameters, 13x13x32 = 5408 features after the pool
    from fixtures.runs import compose as compose_run

    from dlx import models

    cfg = compose_run("+experiment=seed_mnist_cnn_keras")
    m = models.build(cfg.model, Spec("multiclass", (1, 28, 28), 10))
    assert sum(p.numel() for p in m.parameters()) == 693_962
    assert m.features(torch.rand(2, 1, 28, 28)).shape == (2, 32, 13, 13)


def test_valid_padding_that_leaves_nothing_to_pool_is_one_line():
    from dlx.models.cnn import CNN

    with pytest.raises(ConfigError, match=r"block 2 would see 3x3.*model.padding=same"):
        CNN(Spec("multiclass", (1, 8, 8), 10), channels=[8, 8], padding="valid")
    assert CNN(Spec("multiclass", (1, 8, 8), 10), channels=[8, 8])(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_the_pool_gets_its_gradient_in_its_own_channels_last_layout():
    # Flatten returns an NCHW gradient; the CNN hands it to the last pool channels-last (its
    # backward is ~3x slower on a mismatched layout) and the gradients stay the same numbers
    from dlx.models.cnn import CNN

    torch.manual_seed(0)
    spec = Spec("multiclass", (1, 28, 28), 10)
    nchw = CNN(spec, channels=[8], padding="valid")
    nhwc = CNN(spec, channels=[8], padding="valid")
    nhwc.load_state_dict(nchw.state_dict())
    nhwc.to(memory_format=torch.channels_last)
    x = torch.rand(4, 1, 28, 28)
    layouts = []

    def watch(module, inputs, out):  # what the pool's backward receives, after the tensor's hooks
        out.grad_fn.register_prehook(
            lambda grads: layouts.append(grads[0].is_contiguous(memory_format=torch.channels_last)))
    nhwc.features.register_forward_hook(watch)
    nchw(x).sum().backward()
    nhwc(x.contiguous(memory_format=torch.channels_last)).sum().backward()
    assert layouts == [True]
    for a, b in zip(nchw.parameters(), nhwc.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-6)


@pytest.mark.parametrize("batchnorm", [False, True])
def test_pooling_before_the_relu_is_the_same_network(batchnorm):
    # max-pool then ReLU: the numbers and gradients of conv-ReLU-pool, bit for bit, under the
    # same parameter names (a state_dict of either order loads into the other)
    from torch import nn

    from dlx.models.cnn import CNN

    torch.manual_seed(0)
    net = CNN(Spec("multiclass", (1, 28, 28), 10), channels=[8, 16], batchnorm=batchnorm).eval()
    per = 4 if batchnorm else 3
    layers = list(net.features)
    assert [type(layer) for layer in layers[per - 2 : per]] == [nn.MaxPool2d, nn.ReLU]
    relu_first = copy.deepcopy(net)  # its own parameters and gradients
    own = list(relu_first.features)
    relu_first.features = nn.Sequential(*[layer for i in range(0, len(own), per) for layer in
                                          (*own[i : i + per - 2], nn.ReLU(), nn.MaxPool2d(2))])
    relu_first.load_state_dict(net.state_dict())
    x = torch.rand(6, 1, 28, 28) - 0.4
    outs, grads = [], []
    for m in (net, relu_first):
        out = m(x)
        out.pow(2).sum().backward()
        outs.append(out.detach())
        grads.append([p.grad for p in m.parameters()])
    assert grads[0][0] is not grads[1][0]
    assert torch.equal(*outs)
    assert all(torch.equal(a, b) for a, b in zip(*grads))
    avg = CNN(Spec("multiclass", (1, 8, 8), 10), channels=[8], pool="avg")
    assert [type(layer) for layer in avg.features][1:] == [nn.ReLU, nn.AvgPool2d]  # avg: not commuting


# ------------------------------------------------------------------------------ sequences
def test_sequence_models_learn_the_signal_sequences(dlx):
    dlx.train("-m", "+experiment=seed_rnn_signal", "model=rnn,lstm,gru,transformer",
              "trainer.checkpoint_every=0")
    runs = by_model(dlx.runs())
    assert set(runs) == {"rnn", "lstm", "gru", "transformer"}
    baseline = majority_accuracy("+experiment=seed_rnn_signal")
    assert 0.5 <= baseline < 0.6
    acc = {k: r.data.metrics["test_accuracy"] for k, r in runs.items()}
    assert acc["lstm"] >= 0.9 and acc["gru"] >= 0.9, acc
    assert acc["rnn"] >= baseline + 0.25 and acc["transformer"] >= baseline + 0.25, (acc, baseline)


def _padded(tokens: list[list[int]], width: int) -> torch.Tensor:
    return torch.tensor([row + [0] * (width - len(row)) for row in tokens])


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU", "Transformer"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_does_not_change_the_logits(name, bidirectional):
    from dlx.models import rnn, transformer

    if name == "Transformer" and bidirectional:
        pytest.skip("attention reads both directions already")
    torch.manual_seed(0)
    spec = Spec("multiclass", (12,), 3, vocab_size=30)
    if name == "Transformer":
        model = transformer.Transformer(spec, d_model=16, num_heads=2, num_layers=2)
    else:
        model = getattr(rnn, name)(spec, embedding_dim=8, hidden_size=16, num_layers=2,
                                   bidirectional=bidirectional)
    rows = [[5, 9, 2, 7], [3, 4, 5, 6, 7, 8, 9, 10, 11], [12]]
    for train in (False, True):  # dropout sites are p=0, so train mode must agree too
        model.train(train)
        with torch.no_grad():
            tight = model(_padded(rows, 9))
            loose = model(_padded(rows, 12))
            longer = model(_padded(rows, 30))  # more padding than the dataset's sequences
            alone = torch.cat([model(_padded([r], len(r))) for r in rows])
        for other in (loose, longer, alone):
            torch.testing.assert_close(other, tight, atol=1e-5, rtol=1e-5)
    # and the prediction does depend on the tokens
    assert not torch.allclose(model(_padded([[5, 9]], 4)), model(_padded([[5, 10]], 4)))


@pytest.mark.parametrize("name", ["LSTM", "GRU", "Transformer"])
def test_sequence_models_export_as_logged(name):
    """tracking.model_format=pt2 logs a torch.export program: it must give the model's logits,
    for another batch size and other lengths than the example it was exported with."""
    from dlx.models import rnn, transformer

    spec = Spec("binary", (10,), 1, vocab_size=30)
    model = (transformer.Transformer(spec, d_model=16, num_heads=2) if name == "Transformer"
             else getattr(rnn, name)(spec, hidden_size=8, bidirectional=True)).eval()
    example = _padded([[3, 4, 5], [6, 7, 8, 9, 10, 11, 12, 13, 14, 15], [2] * 5, [9]], 10)
    program = torch.export.export(model, (example,),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},)).module()
    other = _padded([[11, 12], [13, 14, 15, 16]], 10)
    torch.testing.assert_close(program(other), model(other))


def test_recurrent_models_read_float_sequences():
    from dlx.models.rnn import GRU

    spec = Spec("regression", (7, 3), 1)
    assert GRU(spec, hidden_size=8, bidirectional=True)(torch.rand(4, 7, 3)).shape == (4, 1)


def test_synthetic_sequences_are_right_padded_token_ids():
    from dlx.data.synthetic import sequence

    cfg = compose("dataset=synthetic_sequence", "dataset.labels=signal", "dataset.vocab_size=50",
                  "dataset.min_length=4", "dataset.n_samples=2000").dataset
    x, y, spec = sequence(cfg)
    assert x.shape == (2000, 10) and spec.vocab_size == 50 and spec.input_shape == (10,)
    assert spec.task == "binary" and x.max() < 50 and x.min() >= 0 and not (x == 1).any()
    lengths = (x != 0).sum(1)
    assert lengths.min() == 4 and lengths.max() == 10
    assert all((row[n:] == 0).all() and (row[:n] >= 2).all() for row, n in zip(x, lengths))
    # signal: positive iff a trigger id (the 3 lowest real ids) occurs; about balanced
    assert (y == ((x >= 2) & (x < 5)).any(1)).all() and 0.3 < y.mean() < 0.6
    # the source's labels are coin flips, independent of the tokens
    noise = compose("dataset=synthetic_sequence", "dataset.n_samples=2000").dataset
    x, y, _ = sequence(noise)
    assert x.shape == (2000, 10) and (x != 0).all() and 0.45 < y.mean() < 0.55
    from dlx.data import registry as loader

    data = loader.load(noise)
    assert data.train[0].dtype == torch.int64 and data.train[1].dtype == torch.float32


# ------------------------------------------------------------------------------ pretrained
@pytest.fixture
def resnet18_weights(tmp_path):
    """A state dict saved from torchvision's own constructor, as torchvision's files are."""
    import torchvision

    torch.manual_seed(123)
    path = tmp_path / "resnet18-test.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def test_resnet18_loads_local_weights_freezes_the_backbone_and_trains_the_head(dlx, resnet18_weights):
    dlx.train_here("model=resnet18", f"model.pretrained={resnet18_weights}", "model.freeze=true",
                   "optimizer.lr=0.01", "trainer.epochs=2", "trainer.checkpoint_every=0",
                   log_model=True)
    (run,) = dlx.runs()

    model = dlx.model(run)
    state = torch.load(resnet18_weights, weights_only=True)
    # the backbone holds the file's tensors, untouched by training (batch-norm statistics included)
    for key in ("conv1.weight", "layer4.1.conv2.weight", "layer1.0.bn1.running_mean", "bn1.weight"):
        assert torch.equal(model.net.state_dict()[key], state[key]), key
    backbone = [p for n, p in model.net.named_parameters() if not n.startswith("fc.")]
    assert backbone and not any(p.requires_grad for p in backbone)
    assert model.head.weight.requires_grad and model.head.weight.shape == (10, 512)
    # the new head learnt digits (8x8 grayscale, repeated to 3 channels and resized to 32x32)
    assert run.data.metrics["test_accuracy"] >= majority_accuracy() + 0.4, run.data.metrics


def test_pretrained_weights_load_in_process_and_adapt_inputs(resnet18_weights, tmp_path):
    from torch import nn

    from dlx.models.pretrained import VGG11, ResNet18

    gray = Spec("multiclass", (1, 8, 8), 4)
    m = ResNet18(gray, pretrained=str(resnet18_weights))
    state = torch.load(resnet18_weights, weights_only=True)
    assert torch.equal(m.net.conv1.weight, state["conv1.weight"])
    assert m.head.out_features == 4 and all(p.requires_grad for p in m.parameters())
    assert m.size == (32, 32) and m(torch.rand(2, 1, 8, 8)).shape == (2, 4)
    m = ResNet18(Spec("binary", (3, 40, 40), 1), freeze=True)
    assert m.size is None and m(torch.rand(2, 3, 40, 40)).shape == (2, 1)
    m.train()
    assert not m.net.bn1.training and m.net.fc.training  # frozen batch-norm stays in eval mode

    v = VGG11(Spec("multiclass", (3, 32, 32), 10), freeze=True)
    assert v.head is v.net.classifier[-1] and v.head.out_features == 10
    assert all(d.p == 0.0 for d in v.modules() if isinstance(d, nn.Dropout))
    assert [p.requires_grad for p in v.parameters()].count(True) == 2  # the head's weight and bias
    assert v(torch.rand(2, 3, 32, 32)).shape == (2, 10)

    with pytest.raises(ConfigError, match="not hold torchvision resnet18 weights"):
        bad = tmp_path / "other.pth"
        torch.save({"weight": torch.zeros(3)}, bad)
        ResNet18(gray, pretrained=str(bad))
    with pytest.raises(ConfigError, match="RGB or grayscale"):
        ResNet18(Spec("multiclass", (2, 32, 32), 3))


@pytest.mark.slow
def test_vgg11_trains_its_head_on_mnist(dlx, tmp_path):
    """VGG-11 (132M parameters) on 300 28x28 grayscale images: repeated to RGB, resized to 32x32,
    random backbone frozen, the new head trained (~40 s on 2 CPU cores)."""
    from fixtures.datasets import make_mnist

    root = make_mnist(tmp_path / "data", n_train=300, n_test=100)
    dlx.train("model=vgg11", "model.freeze=true", "dataset=mnist", f"dataset.root={root}",
              "optimizer.lr=0.01", "trainer.epochs=5", "trainer.checkpoint_every=0", timeout=600)
    (run,) = dlx.runs()
    # the fixture's test split is balanced: the majority class is 10%
    assert run.data.metrics["test_accuracy"] >= 0.1 + 0.5, run.data.metrics


# ------------------------------------------------------------------------------ bad configs
BAD_BUILDS = [
    (["model=lstm", "model.hidden_size=0", "dataset=synthetic_sequence"], "model.hidden_size=0 must be > 0"),
    (["model=mlp", "model.hidden_sizes=[64,0]"], "model.hidden_sizes=[64, 0] must hold sizes > 0"),
    (["model=autoencoder", "model.activation=swish"], "model.activation=swish is not one of"),
    (["model=rnn"], "model=rnn needs sequences"),
    (["model=transformer"], "model=transformer needs sequences"),
    (["model=gru", "dataset=synthetic_logistic"], "no sequence axis"),
    (["model=cnn", "dataset=synthetic_sequence"], "model=cnn needs image data"),
    (["model=transformer", "model.num_heads=3", "dataset=synthetic_sequence"],
     "must divide model.d_model=64"),
    (["model=cnn", "model.kernel_size=[3,3,3]"], "3 sizes for 2 conv blocks"),
    (["model=cnn", "model.kernel_size=0"], "model.kernel_size=0 must be a size > 0"),
    (["model=cnn", "model.pool=MAX"], "model.pool=MAX is not one of max, avg"),  # exact: read exactly
    (["model=cnn", "model.padding=Same"], "model.padding=Same is not one of same, valid"),
    (["model=cnn", "model.padding=valid"], "block 2 would see 3x3"),  # 8x8 digits, two blocks
    (["model=resnet18", "model.pretrained=/nowhere/resnet18.pth"],
     "https://download.pytorch.org/models/resnet18-f37072fd.pth"),
    (["model=vgg11", "model.pretrained=/nowhere/vgg11.pth"], "no such file"),
]


@pytest.mark.parametrize("overrides,message", BAD_BUILDS, ids=[" ".join(o) for o, _ in BAD_BUILDS])
def test_bad_model_config_fails_before_anything_trains(overrides, message):
    """What `dlx train` does first: validate the composed config, load the data, build the model."""
    from dlx import models
    from dlx.config import validate
    from dlx.data import registry as loader

    cfg = compose(*overrides)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
        models.build(cfg.model, loader.load(cfg.dataset).spec)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_missing_weights_file_is_one_line_before_any_run(dlx):
    proc = dlx.train("model=resnet18", "model.pretrained=weights/resnet18.pth", check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlx: error: model.pretrained=weights/resnet18.pth")
    assert "download.pytorch.org/models/resnet18" in lines[0] and "Traceback" not in proc.stderr
    assert str(dlx.cwd / "weights" / "resnet18.pth") in lines[0]  # where to put the file
    assert dlx.runs() == []  # nothing was tracked, nothing trained
