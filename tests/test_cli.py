"""The CLI surface: help, composed config, shell completion of `dlx train` overrides, and that
help, completion and a default run import only what they use."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_help_does_not_import_torch_mlflow_or_hydra():
    code = (
        "import sys\n"
        "sys.argv = ['dlx', '--help']\n"
        "from dlx.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy = [m for m in ('torch', 'mlflow', 'hydra', 'sklearn') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert "train" in proc.stdout and "ui" in proc.stdout


@pytest.mark.parametrize("args", [["trainer.epochs=abc"], ["--cfg", "job"]])
def test_config_errors_and_cfg_job_do_not_import_torch(tmp_path, args):
    """Composing a config (to print it, or to refuse a bad override) needs Hydra, not torch."""
    code = (
        "import sys\n"
        f"sys.argv = ['dlx', 'train', *{args!r}]\n"
        "from dlx.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('loaded:', [m for m in ('torch', 'mlflow', 'sklearn') if m in sys.modules])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert "loaded: []" in proc.stdout, proc.stdout + proc.stderr


def test_train_help_lists_groups_and_options(dlx):
    out = dlx("train", "--help").stdout
    section = out.split("== Configuration groups ==")[1].split("== Config ==")[0]
    groups = dict(line.split(": ", 1) for line in section.splitlines() if ": " in line)
    assert {"cnn", "linear", "logistic", "mlp", "lstm"} <= set(groups["model"].split(", "))
    assert groups["optimizer"] == "adagrad, adam, adamw, custom, rmsprop, sgd"
    assert {"digits", "synthetic_linear", "mnist", "csv"} <= set(groups["dataset"].split(", "))
    assert "schema" not in out  # validation schemas are not user-facing options


def test_cfg_job_prints_the_composed_config_without_training(new_dlx):
    dlx = new_dlx
    proc = dlx("train", "--cfg", "job", "model=logistic", "optimizer=sgd", "optimizer.lr=0.05")
    assert "_target_: dlx.models.linear.Logistic" in proc.stdout
    assert "_target_: torch.optim.SGD" in proc.stdout
    assert "lr: 0.05" in proc.stdout
    assert not (dlx.cwd / "mlflow.db").exists()


def test_default_train_imports_only_what_the_run_uses(tmp_path):
    """`dlx train` on the defaults (tracked, model logged): the training process imports torch,
    Hydra and numpy, never mlflow (the tracking writer's process has it), scikit-learn, scipy,
    pandas, matplotlib or torchvision, and torch._dynamo only as dlx's deferred stand-in."""
    code = (
        "import sys\n"
        "sys.argv = ['dlx', 'train', 'trainer.epochs=1', 'trainer.progress=false']\n"
        "from dlx.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "heavy = [m for m in ('mlflow', 'sklearn', 'scipy', 'pandas', 'matplotlib', 'torchvision')"
        " if m in sys.modules]\n"
        "dynamo = type(sys.modules.get('torch._dynamo')).__name__\n"
        "print('loaded:', heavy, dynamo, 'torch' in sys.modules)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run([sys.executable, "-c", code], check=False, cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "loaded: [] _DeferredDynamo True" in proc.stdout, proc.stdout
    assert "run " in proc.stdout and (tmp_path / "mlflow.db").is_file()  # and it was tracked


def test_compile_loads_the_real_dynamo_after_the_stand_in():
    """A process that deferred torch._dynamo still compiles: the first real use loads it."""
    code = (
        "import sys, torch\n"
        "from dlx.training import optim\n"
        "m = torch.nn.Linear(3, 1)\n"
        "opt = optim.build({'_target_': 'torch.optim.SGD', '_partial_': True, 'lr': 0.1}, "
        "m.parameters(), compiled=False, device=torch.device('cpu'))\n"
        "m(torch.ones(2, 3)).sum().backward(); opt.step(); opt.zero_grad()\n"
        "assert type(sys.modules['torch._dynamo']).__name__ == '_DeferredDynamo'\n"
        "optim.undefer_dynamo()\n"
        "f = torch.compile(lambda x: x * 2 + 1)\n"
        "assert f(torch.ones(2)).tolist() == [3.0, 3.0]\n"
        "assert type(sys.modules['torch._dynamo']).__name__ == 'module'\n"
        "m(torch.ones(2, 3)).sum().backward(); opt.step()\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


# ------------------------------------------------------------------------------ completion
def _complete(words: str, cword: int, tmp_path) -> list[str]:
    """What bash gets on <TAB> from the installed `dlx` script (Typer's bash completion)."""
    env = {**os.environ, "_DLX_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(cword)}
    proc = subprocess.run([str(Path(sys.executable).parent / "dlx")], env=env, cwd=tmp_path,
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_completion_of_commands_groups_options_and_keys(tmp_path):
    assert _complete("dlx tr", 1, tmp_path) == ["train"]
    assert _complete("dlx train mod", 2, tmp_path) == ["model=", "model."]
    # bash splits at "=": `model=<TAB>` and `model=cn<TAB>` complete the part after it
    options = _complete("dlx train model =", 3, tmp_path)
    assert {"cnn", "mlp", "lstm", "resnet18"} <= set(options) and "model=cnn" not in options
    assert _complete("dlx train model = cnn", 4, tmp_path) == ["cnn", "cnn_cifar"]
    # zsh passes the word whole
    assert _complete("dlx train optimizer=ad", 2, tmp_path) == ["optimizer=adagrad",
                                                                "optimizer=adam",
                                                                "optimizer=adamw"]
    # keys follow the option chosen earlier on the line (sgd has momentum, adam does not)
    sgd = _complete("dlx train optimizer = sgd optimizer.", 5, tmp_path)
    assert "optimizer.momentum=" in sgd and "optimizer.lr=" in sgd
    assert "optimizer.momentum=" not in _complete("dlx train optimizer.", 2, tmp_path)
    assert _complete("dlx train trainer.progr", 2, tmp_path) == [
        "trainer.progress=", "trainer.progress=true", "trainer.progress=false"]
    assert _complete("dlx train regularizer = [l2,dro", 4, tmp_path) == ["[l2,dropout"]
    assert "+experiment=seed_rnn" in _complete("dlx train exp", 2, tmp_path)
    assert "--multirun" in _complete("dlx train --mu", 2, tmp_path)
    assert "dataset.target=" in _complete("dlx config show dataset = csv dataset.t", 6, tmp_path)


def test_completion_imports_neither_torch_nor_mlflow():
    code = ("import os, sys\n"
            "os.environ.update(_DLX_COMPLETE='complete_bash', COMP_WORDS='dlx train model.',"
            " COMP_CWORD='2')\n"
            "sys.argv = ['dlx']\n"
            "from dlx.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'mlflow', 'hydra', 'sklearn') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert "model.channels=" in proc.stdout.split()
