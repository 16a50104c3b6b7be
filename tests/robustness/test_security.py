"""Safe defaults: config `_target_`s limited to dlx and torch, pickled models and non-loopback UI
only when the user asks, weights read with weights_only=True."""

import ast
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("target", ["os.system", "builtins.eval", "subprocess.Popen"])
def test_config_targets_outside_dlx_and_torch_are_refused(dlx, target):
    proc = dlx.train("model=logistic", "trainer.epochs=1", f"optimizer._target_={target}", check=False)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert f"optimizer._target_={target} is outside the dlx and torch namespaces" in line
    assert "DLX_ALLOW_ANY_TARGET=1" in line
    assert dlx.runs() == []


def test_the_user_can_opt_in_to_their_own_classes(dlx):
    (dlx.cwd / "myopt.py").write_text(
        "import torch\n\nclass HalfSGD(torch.optim.SGD):\n"
        "    def __init__(self, params, lr, **options):\n"
        "        super().__init__(params, lr=lr / 2, **options)\n")
    dlx.env["PYTHONPATH"] = str(dlx.cwd)
    args = ("model=logistic", "dataset=synthetic_logistic", "trainer.epochs=2",
            "optimizer=sgd", "optimizer._target_=myopt.HalfSGD")
    assert dlx.train(*args, check=False).returncode == 1  # refused without the opt-in
    dlx.env["DLX_ALLOW_ANY_TARGET"] = "1"
    dlx.train(*args)
    (run,) = dlx.runs()
    assert run.info.status == "FINISHED" and run.data.params["optimizer._target_"] == "myopt.HalfSGD"


def test_ui_warns_when_it_binds_beyond_loopback(dlx):
    with socket.socket() as s:  # a taken port: dlx ui stops after its checks, the UI never starts
        s.bind(("0.0.0.0", 0))
        s.listen()
        proc = dlx("ui", "--host", "0.0.0.0", "--port", str(s.getsockname()[1]), check=False)
    assert proc.returncode == 1
    warning, error = proc.stderr.strip().splitlines()
    assert "warning: binding 0.0.0.0 makes your runs visible to other machines" in warning
    assert "pick another with --port" in error


def test_every_torch_load_in_dlx_reads_weights_only():
    """No torch.load without weights_only=True anywhere in dlx (a pickle runs code on load)."""
    calls = []
    for path in (ROOT / "dlx").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                weights_only = [k for k in node.keywords if k.arg == "weights_only"]
                calls.append((path.name, weights_only and ast.unparse(weights_only[0].value)))
    assert calls, "torch.load is used somewhere"
    assert all(w == "True" for _, w in calls), calls
