"""The one place that proves the guarantee for bad input: every case below runs the real `dlx`
command and must exit non-zero with exactly one stderr line `dlx: error: ...` naming the problem,
print no traceback, and leave no MLflow run RUNNING.

Cases are cheap on purpose: each fails while Hydra composes the config (~1 s) or before anything
trains (~5 s, mostly imports); only the fixture that makes a real checkpoint trains, one epoch.

Deliberately NOT errors (so not in the table): a batch size larger than the training split is
full-batch gradient descent (the seed_mlp_sigmoid preset uses batch_size=100000), and a later
override of the same key wins (Hydra's rule).
"""

from __future__ import annotations

import os
import pickle
import socket
import time
from pathlib import Path

import pytest
from fixtures.datasets import (
    make_csv_empty,
    make_csv_ragged,
    make_imdb,
    make_mnist_truncated,
    make_nonutf8_text,
)

# defaults first, so a case's own override of the same key wins
FAST = ["trainer.progress=false", "tracking.log_model=false", "trainer.epochs=1"]
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: connection refused at once
RUN_ID = "0123456789abcdef0123456789abcdef"  # well-formed, in no store


class Ctx:
    """What a case may need: its working directory (`d`), real-format files built there, a
    checkpoint of another model, a port that is already taken."""

    def __init__(self, dlx, request):
        self.dlx, self.d, self.request, self.sockets = dlx, dlx.cwd, request, []

    def file(self, name: str, data: bytes | str = b"") -> Path:
        path = self.d / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def torch_file(self, name: str, obj) -> Path:
        import torch

        path = self.d / name
        torch.save(obj, path)
        return path

    def checkpoint(self) -> Path:
        """A real last.pt of a one-epoch MLP run (made once per test session and worker)."""
        work = self.request.getfixturevalue("checkpoint_dir")
        last = work / "run" / "checkpoints" / "last.pt"
        if not last.is_file():
            type(self.dlx)(work).train("model=mlp", "model.hidden_sizes=[8]", "trainer.epochs=1",
                                       "tracking.enabled=false", f"hydra.run.dir={work}/run")
        return last

    def busy_port(self) -> int:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        self.sockets.append(s)
        return s.getsockname()[1]

    def readonly_dir(self) -> Path:
        path = self.d / "readonly"
        path.mkdir()
        path.chmod(0o555)
        return path

    def close(self) -> None:
        for s in self.sockets:
            s.close()
        if (self.d / "readonly").exists():
            (self.d / "readonly").chmod(0o755)


def train(*overrides: str):
    """A `dlx train` case with fixed overrides; `{d}` is the case's working directory."""
    return lambda c: ["train", *FAST, *(o.format(d=c.d) for o in overrides)]


def train_with(make):
    """A `dlx train` case whose overrides need files: make(ctx) -> overrides."""
    return lambda c: ["train", *FAST, *make(c)]


def command(*args: str):
    return lambda c: [a.format(d=c.d) for a in args]


# builders of real-format bad files (tests/fixtures/datasets.py), each -> the overrides that use it
def _empty_csv(c: Ctx) -> list[str]:
    return ["dataset=csv", f"dataset.path={make_csv_empty(c.d / 'e.csv')}"]


def _ragged_csv(c: Ctx) -> list[str]:
    return ["dataset=csv", f"dataset.path={make_csv_ragged(c.d / 'r.csv')}"]


def _latin1_csv(c: Ctx) -> list[str]:
    return ["dataset=csv", f"dataset.path={make_nonutf8_text(c.d / 'n.csv')}"]


def _truncated_mnist(c: Ctx) -> list[str]:
    root = make_mnist_truncated(c.d / "mnist", n_train=60, n_test=20)
    return ["dataset=mnist", f"dataset.root={root}"]


def _latin1_review(c: Ctx) -> list[str]:
    root = make_imdb(c.d / "imdb", n_per_split_class=4)
    (root / "aclImdb/train/pos/99_9.txt").write_bytes(b"a caf\xe9 review, not utf-8 \xff")
    return ["dataset=imdb", "model=rnn", f"dataset.root={root}"]


def _weights_not_a_state_dict(c: Ctx) -> list[str]:
    return ["model=resnet18", f"model.pretrained={c.torch_file('list.pth', [1, 2, 3])}"]


def _other_models_checkpoint(c: Ctx) -> list[str]:
    return ["model=cnn", f"trainer.resume={c.checkpoint()}"]


def _junk_checkpoint(c: Ctx) -> list[str]:
    return [f"trainer.resume={c.file('junk.pt', pickle.dumps(3))}"]


def _readonly_run_dir(c: Ctx) -> list[str]:
    return [f"hydra.run.dir={c.readonly_dir()}/run"]


def _run_dir_under_a_file(c: Ctx) -> list[str]:
    return [f"hydra.run.dir={c.file('a_file')}/run"]


skip_root = pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")


def _no_cuda() -> bool:
    import torch

    return not torch.cuda.is_available()


# (argv builder, a distinctive part of the one error line); ids say what is wrong
CASES = [
    # -- malformed overrides and unknown names: Hydra refuses them while composing
    pytest.param(train("model="), "Could not find 'model/'", id="empty group option model="),
    pytest.param(train("=x"), "Could not override ''", id="override without key =x"),
    pytest.param(train("optimizer.lr==1"), "Error parsing override 'optimizer.lr==1'",
                 id="double equals optimizer.lr==1"),
    pytest.param(train("model=[cnn"), "no viable alternative at input '[cnn'", id="unclosed list"),
    pytest.param(train("losses=mse"), "Could not override 'losses'", id="unknown group"),
    pytest.param(train("model=nope"),
                 "Could not find 'model/nope'; Available options in 'model': autoencoder, cnn,",
                 id="unknown model option"),
    pytest.param(train("optimizer=lbfgs"), "Available options in 'optimizer': adagrad, adam",
                 id="unknown optimizer option"),
    pytest.param(train("hydra/launcher=nope"), "Could not find 'hydra/launcher/nope'",
                 id="unknown launcher"),
    pytest.param(train("trainer.epochz=3"), "Could not override 'trainer.epochz'",
                 id="unknown key"),
    pytest.param(train("optimizer.lr=abc"),
                 "'abc' of type 'str' could not be converted to Float; full_key: optimizer.lr",
                 id="lr not a number"),
    pytest.param(train("trainer.epochs=1.5"),
                 "could not be converted to Integer; full_key: trainer.epochs",
                 id="fractional epochs"),
    pytest.param(train("trainer.epochs=abc"),
                 "'abc' of type 'str' could not be converted to Integer; full_key: trainer.epochs",
                 id="epochs not a number"),
    pytest.param(train("trainer.progress=maybe"), "full_key: trainer.progress",
                 id="bool not a bool"),
    pytest.param(command("train", "--cfg", "job", "-m"), "Only one of --run, --multirun, --cfg",
                 id="--cfg with -m"),
    # -- keys `+` appends past the schemas, groups removed with `~`: refused by validation
    pytest.param(train("+trainer.epochz=3"),
                 "trainer.epochz is not an option of the trainer config",
                 id="unknown key appended with +"),
    pytest.param(train("+epochs=3"), "epochs is not a config group", id="unknown top-level key"),
    pytest.param(train("~model"), "model is missing", id="group removed with ~"),
    # -- values out of range
    pytest.param(train("optimizer.lr=-0.1"), "optimizer.lr=-0.1 must be > 0", id="negative lr"),
    pytest.param(train("optimizer.lr=-1"), "optimizer.lr=-1.0 must be > 0",
                 id="negative lr written as an int"),
    pytest.param(train("trainer.device=tpu"),
                 "trainer.device=tpu is not one of auto, cpu, cuda, cuda:N", id="unknown device"),
    pytest.param(train("model=mlp", "model.activation=swish"),
                 "model.activation=swish is not one of", id="unknown activation"),
    pytest.param(train("dataset.batch_size=0"), "dataset.batch_size=0 must be > 0",
                 id="batch size 0"),
    pytest.param(train("regularizer=[dropout]", "regularizer.dropout.p=1.0"),
                 "regularizer.dropout.p=1.0 must be in [0, 1)", id="dropout p 1"),
    pytest.param(train("regularizer=[early_stopping]", "regularizer.early_stopping.patience=-1"),
                 "regularizer.early_stopping.patience=-1 must be >= 0", id="negative patience"),
    pytest.param(train("trainer.cv_folds=1"), "trainer.cv_folds=1 is not cross-validation",
                 id="one cv fold"),
    pytest.param(train("optimizer.betas=[0.9]"), "optimizer.betas=[0.9] must be two values",
                 id="one adam beta"),
    pytest.param(train("optimizer=sgd", "optimizer.nesterov=true"),
                 "optimizer.nesterov=true needs optimizer.momentum > 0",
                 id="nesterov without momentum"),
    pytest.param(train("model=mlp", "model.batchnorm=true", "dataset.batch_size=1"),
                 "model.batchnorm=true needs dataset.batch_size >= 2", id="batchnorm with batch 1"),
    pytest.param(train("trainer.device=cuda"),
                 "no usable CUDA device (torch.cuda.is_available() is False): use trainer.device=cpu",
                 id="cuda without cuda",
                 marks=pytest.mark.skipif("not _no_cuda()", reason="this machine has CUDA")),
    pytest.param(train("trainer.precision=fp16", "trainer.device=cpu"),
                 "trainer.precision=fp16 needs a CUDA device", id="fp16 on cpu"),
    pytest.param(train("trainer.monitor=val_accuracy", "dataset=synthetic_linear", "model=linear"),
                 "trainer.monitor=val_accuracy is not logged for a regression task",
                 id="monitor not logged"),
    # -- a model that cannot read the dataset: refused before anything trains
    pytest.param(train("model=logistic", "dataset=synthetic_linear"),
                 "model=logistic needs a classification dataset, this one is regression; "
                 "use model=linear", id="classifier on a regression dataset"),
    pytest.param(train("model=cnn", "dataset=synthetic_logistic"),
                 "model=cnn needs image data shaped (channels, height, width)",
                 id="cnn on tabular data"),
    # -- dataset files: missing, empty, corrupt
    pytest.param(train("dataset=csv", "dataset.path={d}/nope.csv"), "nope.csv does not exist",
                 id="missing csv"),
    pytest.param(train_with(_empty_csv), "e.csv is empty", id="empty csv"),
    pytest.param(train_with(_ragged_csv), "r.csv is malformed", id="ragged csv"),
    pytest.param(train_with(_latin1_csv), "n.csv is not utf-8 text", id="non-utf8 csv"),
    pytest.param(train_with(_truncated_mnist), "cannot read MNIST", id="truncated mnist idx"),
    pytest.param(train_with(_latin1_review), "99_9.txt is not UTF-8 text",
                 id="non-utf8 imdb review"),
    # -- weights and checkpoints that are not what they claim
    pytest.param(train_with(_weights_not_a_state_dict), "holds a list, not a state dict",
                 id="pretrained not a state dict"),
    pytest.param(train_with(_other_models_checkpoint), "holds a different model",
                 id="resume another model's checkpoint"),
    pytest.param(train_with(_junk_checkpoint), "cannot read checkpoint",
                 id="resume from a junk file"),
    # -- tracking and output
    pytest.param(train(f"tracking.uri={UNREACHABLE}"),
                 f"cannot use the MLflow store {UNREACHABLE}",
                 id="unreachable tracking server"),
    pytest.param(train_with(_readonly_run_dir), "Permission denied", id="read-only output dir",
                 marks=skip_root),
    pytest.param(train_with(_run_dir_under_a_file), "Not a directory",
                 id="output dir under a file"),
    pytest.param(command("train", "-m", *FAST, "optimizer.lr=-1"), "optimizer.lr=-1.0 must be > 0",
                 id="sweep whose only job is invalid"),
    # -- the other commands
    pytest.param(command("eval", RUN_ID), f"no run '{RUN_ID}'", id="eval a missing run"),
    pytest.param(command("runs", "--uri", UNREACHABLE), f"MLflow store {UNREACHABLE}",
                 id="runs on an unreachable server"),
    pytest.param(command("runs", "--experiment", "nope"), "no experiment 'nope'",
                 id="runs of an unknown experiment"),
    pytest.param(command("config", "show", "model=nope"), "Could not find 'model/nope'",
                 id="config show of an unknown option"),
    pytest.param(lambda c: ["ui", "--port", str(c.busy_port())], "cannot listen on 127.0.0.1:",
                 id="ui on a taken port"),
]


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("checkpoint")


@pytest.mark.parametrize("argv,message", CASES)
def test_bad_input_fails_with_one_clear_line(dlx, request, argv, message):
    ctx = Ctx(dlx, request)
    try:
        args = argv(ctx)
        start = time.monotonic()
        proc = dlx(*args, check=False, timeout=120)
        seconds = time.monotonic() - start
    finally:
        ctx.close()
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Traceback" not in out, out
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlx: error: "), proc.stderr
    assert message.format(d=dlx.cwd) in lines[0], lines[0]
    assert seconds < 60, f"took {seconds:.0f} s to fail"  # an unreachable server fails fast too
    if (dlx.cwd / "mlflow.db").exists():  # a store that was never created holds no run
        assert [r.info.run_name for r in dlx.runs() if r.info.status == "RUNNING"] == []
