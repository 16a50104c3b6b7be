"""The real engines the cluster tests run against, started and stopped by pid: a PostgreSQL 15
cluster in a temporary folder (as the `postgres` user: PostgreSQL refuses to run as root) and
MLflow's own `mlflow server` over it, with proxied artifacts, on 127.0.0.1."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
MLFLOW = Path(sys.executable).with_name("mlflow")  # the venv's


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM to the process group the process leads (its workers too), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            continue


class Postgres:
    """A PostgreSQL cluster of its own: data and socket dirs owned by `postgres`, trust auth on
    127.0.0.1 only."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="dlx-pg-"))  # not under pytest's 0700 tmp dir
        self.data, self.sockets = self.root / "data", self.root / "sockets"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        user = pwd.getpwnam("postgres")
        os.chmod(self.root, 0o755)
        for d in (self.data, self.sockets):
            d.mkdir()
            os.chown(d, user.pw_uid, user.pw_gid)

    def _as_postgres(self, *argv: str, **kw):
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return [*prefix, *argv]

    def start(self) -> None:
        subprocess.run(self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-U",
                                         "postgres", "--auth=trust", "-E", "UTF8"),
                       check=True, capture_output=True)
        self.proc = subprocess.Popen(
            self._as_postgres(str(PG_BIN / "postgres"), "-D", str(self.data), "-h", "127.0.0.1",
                              "-p", str(self.port), "-k", str(self.sockets),
                              "-c", "max_connections=200", "-c", "fsync=off"),
            stdout=subprocess.DEVNULL, stderr=open(self.root / "postgres.log", "w"),
            start_new_session=True)
        deadline = time.time() + 60
        while subprocess.run([str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                             capture_output=True).returncode != 0:
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("PostgreSQL did not start:\n" + self.log())
            time.sleep(0.2)

    def create_database(self, name: str) -> str:
        subprocess.run([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                        "postgres", name], check=True, capture_output=True)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def log(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None:
            # postgres is our child through runuser; its group is the session we started
            _stop(self.proc)
        shutil.rmtree(self.root, ignore_errors=True)


class MlflowServer:
    """`mlflow server` over `backend` with proxied artifacts under `artifacts`; stop() and
    start() again keep its port and store (a restart)."""

    def __init__(self, backend: str, artifacts: Path, log: Path):
        self.backend, self.artifacts, self.log_path = backend, artifacts, log
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> float:
        """Start it and wait for /health; returns the seconds that took."""
        began = time.time()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        self.proc = subprocess.Popen(
            [str(MLFLOW), "server", "--backend-store-uri", self.backend,
             "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "2"],
            stdout=subprocess.DEVNULL, stderr=open(self.log_path, "a"), env=env,
            start_new_session=True)
        while True:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return time.time() - began
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() - began > timeout:
                self.stop()
                raise RuntimeError("mlflow server did not start:\n" + self.log())
            time.sleep(0.25)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    def log(self) -> str:
        return self.log_path.read_text()[-3000:] if self.log_path.exists() else ""
