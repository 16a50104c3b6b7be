"""The CLI surface: help, composed config, and that help stays light."""

import subprocess
import sys


def test_help_does_not_import_torch_mlflow_or_hydra():
    code = (
        "import sys\n"
        "sys.argv = ['dlx', '--help']\n"
        "from dlx.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy = [m for m in ('torch', 'mlflow', 'hydra', 'sklearn') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "train" in proc.stdout and "ui" in proc.stdout


def test_train_help_lists_groups_and_options(dlx):
    out = dlx("train", "--help").stdout
    section = out.split("== Configuration groups ==")[1].split("== Config ==")[0]
    groups = dict(line.split(": ", 1) for line in section.splitlines() if ": " in line)
    assert {"cnn", "linear", "logistic", "mlp", "lstm"} <= set(groups["model"].split(", "))
    assert groups["optimizer"] == "adagrad, adam, adamw, rmsprop, sgd"
    assert {"digits", "synthetic_linear", "mnist", "csv"} <= set(groups["dataset"].split(", "))
    assert "schema" not in out  # validation schemas are not user-facing options


def test_cfg_job_prints_the_composed_config_without_training(dlx):
    proc = dlx("train", "--cfg", "job", "model=logistic", "optimizer=sgd", "optimizer.lr=0.05")
    assert "_target_: dlx.models.linear.Logistic" in proc.stdout
    assert "_target_: torch.optim.SGD" in proc.stdout
    assert "lr: 0.05" in proc.stdout
    assert not (dlx.cwd / "mlflow.db").exists()
