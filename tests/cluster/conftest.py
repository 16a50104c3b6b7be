"""The cluster tests' engines, once per session: a real PostgreSQL 15 cluster and a real
`mlflow server` over it (proxied artifacts), both on 127.0.0.1 and stopped by pid at the end,
whatever happened. `team` is a Dlx whose runs go to that server."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from cluster.servers import MlflowServer, Postgres
from fixtures.runs import Dlx

TINY = ("model=mlp", "trainer.epochs=2", "trainer.device=cpu", "trainer.progress=false",
        "tracking.log_model=false")


class ServerDlx(Dlx):
    """A Dlx whose store is a tracking server: `tracking.uri=<server>` and experiment
    `experiment` on every `train`, and the server read back through an MlflowClient."""

    def __init__(self, cwd: Path, server: MlflowServer, experiment: str):
        super().__init__(cwd)
        self.server, self.experiment = server, experiment

    @property
    def uri(self) -> str:
        return self.server.uri

    @property
    def overrides(self) -> list[str]:
        return [f"tracking.uri={self.uri}", f"tracking.experiment={self.experiment}"]

    def train(self, *overrides: str, **kw):
        """`dlx train` with TINY, then the server's overrides, then `overrides` (later wins);
        a `-m` among them goes first, where Hydra wants it."""
        flags = [o for o in overrides if o == "-m"]
        rest = [o for o in overrides if o != "-m"]
        return self("train", *flags, *TINY, *self.overrides, *rest, **kw)

    def client(self):
        from dlx.tracking.store import client

        return client(self.uri)

    def runs(self, experiment: str | None = None):
        return super().runs(experiment or self.experiment)

    def steps(self, run_id: str, key: str = "train_loss") -> list[int]:
        """The steps a metric was logged at, duplicates kept."""
        return sorted(m.step for m in self.client().get_metric_history(run_id, key))


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL cluster of the session's own (databases: `create_database(name)`)."""
    pg = Postgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()


@pytest.fixture(scope="session")
def server(postgres):
    folder = Path(tempfile.mkdtemp(prefix="dlx-cluster-"))
    mlflow = MlflowServer(postgres.create_database("mlflow"), folder / "artifacts",
                          folder / "mlflow-server.log")
    try:
        mlflow.start()
        yield mlflow
    finally:
        mlflow.stop()


@pytest.fixture
def team(tmp_path: Path, server: MlflowServer, request) -> ServerDlx:
    """A working directory whose runs go to the server, in an experiment of the test's own."""
    return ServerDlx(tmp_path, server, request.node.name[:60])
