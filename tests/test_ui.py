"""`dlx ui` serves MLflow's UI over the store training writes to, on loopback by default."""

import socket
import subprocess
import sys
import time
import urllib.request


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_serves_the_project_store_on_loopback(dlx):
    dlx.train_here("model=linear", "trainer.epochs=1", "tracking.experiment=shown")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "dlx", "ui", "--port", str(port)], cwd=dlx.cwd,
                            env=dlx.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 180
        body = None
        while time.time() < deadline and body is None:
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/get-by-name"
                    "?experiment_name=shown")
                body = urllib.request.urlopen(req, timeout=2).read().decode()
            except OSError:
                time.sleep(0.5)
        assert body is not None, "the UI did not answer"
        assert '"name": "shown"' in body or '"name":"shown"' in body
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_ui_on_a_taken_port_is_one_clear_line(dlx):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = dlx("ui", "--port", str(port), check=False)
    assert proc.returncode == 1
    assert "pick another with --port" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
