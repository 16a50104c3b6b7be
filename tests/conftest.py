"""Tests drive the real `dlx` command in a temporary working directory, then read what a user
would read: exit codes, messages, and the MLflow store the run wrote (./mlflow.db)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FAST = ["trainer.progress=false", "tracking.log_model=false"]


class Dlx:
    def __init__(self, cwd: Path):
        self.cwd = cwd
        # one thread per dlx process: the tests' models are small, and threads only contend
        # COLUMNS: tables are as wide as a wide terminal unless a test says otherwise
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
        self.env.pop("MLFLOW_TRACKING_URI", None)
        self.env.pop("HYDRA_FULL_ERROR", None)
        self.env.pop("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", None)  # dlx's safe default applies

    def __call__(self, *args: str, check: bool = True, timeout: int = 300):
        proc = subprocess.run([sys.executable, "-m", "dlx", *args], cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"dlx {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def train(self, *overrides: str, **kw):
        return self("train", *overrides, *FAST, **kw)

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.cwd / 'mlflow.db'}"

    def client(self):
        """An MlflowClient on the store, opened as dlx opens it (a store being created by a
        dlx process is waited for, not migrated twice at once)."""
        from dlx.tracking.store import client

        return client(self.uri)

    def model(self, run):
        """The run's trained network, as a user loads it: dlx.load_model."""
        import dlx

        return dlx.load_model(run.info.run_id, self.uri)

    def runs(self, experiment: str = "dlx"):
        client = self.client()
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return []
        return client.search_runs([exp.experiment_id], max_results=1000)


@pytest.fixture
def dlx(tmp_path: Path) -> Dlx:
    return Dlx(tmp_path)


@pytest.fixture(scope="module")
def module_dlx(tmp_path_factory) -> Dlx:
    """One working directory (and store) shared by the tests of a module."""
    return Dlx(tmp_path_factory.mktemp("shared"))
