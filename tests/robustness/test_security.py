"""Safe defaults: pickled models and non-loopback UI only when the user asks, weights read with
weights_only=True. (The trust rule for a config's `_target_`: tests/test_extending.py.)"""

import ast
import socket
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]


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
