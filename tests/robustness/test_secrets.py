"""A tracking URI with credentials (http://user:PASSWORD@host, ?token=..., a Databricks token)
never reaches logged params, tags, config.yaml/overrides.txt artifacts or printed output: dlx
logs and prints `user:***@host` (tracking.redact). Hydra's own files in the run dir
(.hydra/*.yaml) and the checkpoints stay on the user's disk and keep the overrides as typed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dlx.config import flatten
from dlx.tracking.redact import redact

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize("text,want", [
    ("http://alice:s3cr3t-Pa55@mlflow.example.com/", "http://alice:***@mlflow.example.com/"),
    ("https://alice:s3cr3t-Pa55@host:5000/path?x=1", "https://alice:***@host:5000/path?x=1"),
    ("https://alice:p@ss:w0rd@host/", "https://alice:***@host/"),  # an unescaped @ in it
    ("postgresql://dlx:s3cr3t-Pa55@db:5432/mlflow", "postgresql://dlx:***@db:5432/mlflow"),
    ("https://host/api?token=s3cr3t-Pa55&x=1", "https://host/api?token=***&x=1"),
    ("https://host/?api_key=s3cr3t-Pa55", "https://host/?api_key=***"),
    ("token dapi0123456789abcdef0123456789abcdef used", "token dapi*** used"),
    ("a=http://u:p1@h/ b=http://v:p2@i/", "a=http://u:***@h/ b=http://v:***@i/"),
    # nothing secret: unchanged
    ("http://alice@host/", "http://alice@host/"),
    ("sqlite:////tmp/a:b@c/mlflow.db", "sqlite:////tmp/a:b@c/mlflow.db"),
    ("databricks://my-profile", "databricks://my-profile"),
    ("user:pass@host without a scheme", "user:pass@host without a scheme"),
    ("0.001", "0.001"),
])
def test_redact(text, want):
    assert redact(text) == want


def _compose(*overrides):
    from fixtures.runs import compose

    return compose(*overrides)


def test_what_a_run_would_log_is_redacted(tmp_path):
    """The tracking writer's logging operations on a composed config whose tracking.uri carries
    a password, against a local store: params, tags, and text artifacts come out redacted."""
    uri = f"https://alice:{SECRET}@mlflow.example.com:5000/"
    cfg = _compose(f"tracking.uri={uri}")
    assert SECRET in str(flatten(cfg)) and SECRET in OmegaConf.to_yaml(cfg)  # what dlx passes on

    from mlflow.tracking import MlflowClient

    from dlx.tracking.writer import Handler

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    handler = Handler()
    run_id = handler.start_run("run", store, "dlx", "r", {"dlx.overrides": f"tracking.uri={uri}"},
                               flatten(cfg), None, 0, str(tmp_path))
    handler.log_files("run", {"config.yaml": OmegaConf.to_yaml(cfg, resolve=True),
                              "overrides.txt": f"tracking.uri={uri}\n"})
    handler.set_tags("run", {"dlx.epochs": 3, "note": f"see {uri}"})
    handler.end_run("run", "FINISHED")
    client = MlflowClient(store)
    run = client.get_run(run_id)
    texts = [client.download_artifacts(run_id, name, str(tmp_path)) for name in
             ("config.yaml", "overrides.txt")]
    logged = repr(run.data.params) + repr(run.data.tags) + "".join(Path(t).read_text() for t in texts)
    assert SECRET not in logged
    assert run.data.params["tracking.uri"] == "https://alice:***@mlflow.example.com:5000/"
    assert "uri: https://alice:***@mlflow.example.com:5000/" in Path(texts[0]).read_text()
    assert run.data.tags["dlx.overrides"] == "tracking.uri=https://alice:***@mlflow.example.com:5000/"
    assert run.data.params["optimizer.lr"] == "0.001"  # everything else as before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """A local MLflow tracking server (no auth: it ignores the credentials in the URL)."""
    port, folder = _free_port(), tmp_path / "server"
    folder.mkdir()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                             f"sqlite:///{folder / 'server.db'}", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"], cwd=folder, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, "mlflow server did not start"
                time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow  # over 30 s: `make test-slow` (CI runs it)
def test_a_run_on_a_server_reached_with_a_password_records_and_prints_no_password(dlx, server):
    proc = dlx.train("model=logistic", "dataset=synthetic_logistic", "trainer.epochs=1",
                     f"tracking.uri=http://alice:{SECRET}@{server}")
    assert SECRET not in proc.stdout + proc.stderr

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"http://{server}")
    (run,) = client.search_runs([client.get_experiment_by_name("dlx").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_id in proc.stdout
    assert run.data.params["tracking.uri"] == f"http://alice:***@{server}"
    assert f"tracking.uri=http://alice:***@{server}" in run.data.tags["dlx.overrides"]
    assert SECRET not in repr(run.data.params) + repr(run.data.tags)
    for path in ("config.yaml", "overrides.txt"):
        text = Path(client.download_artifacts(run.info.run_id, path, str(dlx.cwd))).read_text()
        assert SECRET not in text and f"alice:***@{server}" in text, path


def test_an_unreachable_server_named_with_a_password_is_one_redacted_line(dlx):
    dlx.env["MLFLOW_TRACKING_URI"] = f"http://alice:{SECRET}@127.0.0.1:{_free_port()}/"
    dlx.env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    proc = dlx.train("model=logistic", "dataset=synthetic_logistic", "trainer.epochs=1",
                     check=False)
    assert proc.returncode == 1
    assert SECRET not in proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("dlx: error: ") and "http://alice:***@127.0.0.1:" in line


def test_an_unreachable_postgresql_store_is_one_redacted_line_in_seconds(dlx):
    port = _free_port()  # nothing listens there
    proc = dlx.train("model=logistic", "dataset=synthetic_logistic", "trainer.epochs=1",
                     f"tracking.uri=postgresql://alice:{SECRET}@127.0.0.1:{port}/mlflow",
                     check=False, timeout=60)  # MLflow alone retries its engine for ~100 s
    assert proc.returncode == 1
    assert SECRET not in proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("dlx: error: cannot reach the database server")
    assert f"postgresql://alice:***@127.0.0.1:{port}/mlflow" in line and "check tracking.uri" in line


def test_a_database_store_without_its_driver_names_the_module_to_install(dlx):
    import socket

    with socket.socket() as listening:  # something answers there: the driver is what is missing
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        proc = dlx.train("model=logistic", "dataset=synthetic_logistic", "trainer.epochs=1",
                         f"tracking.uri=postgresql+pg8000://alice:{SECRET}@127.0.0.1:{port}/m",
                         check=False, timeout=60)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert "needs the Python module pg8000 (pip install pg8000)" in line
    assert SECRET not in line
