"""Grid sweeps on a real two-node Ray cluster (`hydra/launcher=ray`): `ray start --head` on one
host of the test's own and `ray start --address=...` on a second (network namespaces on this
machine, tests/cluster/servers.py), `dlx train -m` run as its driver on the first. The hosts
share a filesystem, so the store is one SQLite file that every node's tasks write into."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from cluster.servers import Hosts, RayCluster
from dlx.tracking import PARENT_TAG
from fixtures.runs import Dlx

pytestmark = pytest.mark.cluster

DLX = str(Path(sys.executable).with_name("dlx"))
GRID = ("model=mlp", "trainer.epochs=3", "trainer.device=cpu", "trainer.progress=false",
        "tracking.log_model=false", "optimizer=sgd,adam", "optimizer.lr=0.01,0.05",
        "dataset.batch_size=32,64")  # 2x2x2: eight points, none sharing a training


@pytest.fixture(scope="module")
def hosts():
    if os.geteuid() != 0:
        pytest.skip("two hosts of the test's own need network namespaces (`ip netns`, as root)")
    made = Hosts()
    try:
        made.start()
        yield made
    finally:
        made.stop()


@pytest.fixture(scope="module")
def cluster(hosts):
    """One node at first; a test that wants two calls add_node()."""
    ray = RayCluster(hosts, Path(tempfile.mkdtemp(prefix="dlx-ray-")))
    try:
        ray.start(nodes=1)
        yield ray
    finally:
        ray.stop()


def _sweep(dlx: Dlx, hosts: Hosts, cluster: RayCluster, *overrides: str, during=None):
    """`dlx train -m hydra/launcher=ray ...` on the head's host; `during(proc)` runs while it
    does. Returns the finished process, its wall time and the seconds from its first point's
    line to its last (the rate once Ray, the workers and the store are up)."""
    began = time.time()
    proc = subprocess.Popen(
        hosts.run(0, [DLX, "train", "-m", "hydra/launcher=ray",
                      f"hydra.launcher.address={cluster.address}", f"tracking.uri={dlx.uri}",
                      *GRID, *overrides]),
        cwd=dlx.cwd, env={**dlx.env, **cluster.auth}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: lines.extend((time.time(), line) for line in proc.stdout))
    reader.start()
    try:
        if during is not None:
            during(proc)
        err = proc.stderr.read()
        proc.wait(timeout=600)
        reader.join(timeout=60)
    finally:
        proc.kill()
    points = [t for t, line in lines if line.startswith("sweep: point ")]
    out = "".join(line for _, line in lines)
    return (subprocess.CompletedProcess(proc.args, proc.returncode, out, err), time.time() - began,
            points[-1] - points[0] if len(points) > 1 else float("nan"))


def _children(dlx: Dlx):
    runs = dlx.runs()
    (parent,) = [r for r in runs if PARENT_TAG not in r.data.tags]
    children = [r for r in runs if PARENT_TAG in r.data.tags]
    assert {r.data.tags[PARENT_TAG] for r in children} == {parent.info.run_id}
    return parent, children


def _point(run) -> tuple[str, str, str]:
    p = run.data.params
    return run.data.tags["dlx.optimizer"], p["optimizer.lr"], p["dataset.batch_size"]


def test_a_grid_on_one_then_two_nodes_records_every_point_once(tmp_path, hosts, cluster):
    one = Dlx(tmp_path / "one")
    one.cwd.mkdir()
    proc, alone, alone_steady = _sweep(one, hosts, cluster)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cluster.add_node()
    two = Dlx(tmp_path / "two")
    two.cwd.mkdir()
    proc, spread, spread_steady = _sweep(two, hosts, cluster)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    parent, children = _children(two)
    assert len(children) == 8 and len({_point(r) for r in children}) == 8  # each point once
    assert all(r.info.status == "FINISHED" for r in children) and parent.info.status == "FINISHED"
    store = two.client()
    for r in children:
        assert sorted(m.step for m in store.get_metric_history(r.info.run_id, "val_loss")) == \
            [1, 2, 3]
    (best,) = [r for r in children if r.info.run_id == parent.data.tags["dlx.best_run_id"]]
    assert best.data.metrics["test_accuracy"] > 0.9
    nodes = {line.split(" on ")[-1].split(":")[0] for line in proc.stdout.splitlines()
             if line.startswith("sweep: point ")}
    assert nodes == set(hosts.ADDRESSES), proc.stdout  # both nodes trained points
    assert "sweep: best of 8 runs" in proc.stdout and not proc.stderr.strip(), proc.stderr
    print(f"\nray 2x2x2 grid: runs recorded {len(children)}/8 under one parent; whole sweep "
          f"1 node {alone:.1f} s, 2 nodes {spread:.1f} s (x{alone / spread:.2f}); points 2-8 "
          f"after the first: 1 node {7 / alone_steady:.2f} points/s, 2 nodes "
          f"{7 / spread_steady:.2f} points/s (x{alone_steady / spread_steady:.2f})")


def test_a_killed_ray_worker_fails_only_its_point(tmp_path, hosts, cluster):
    if len(cluster.nodes) < 2:
        cluster.add_node()
    dlx = Dlx(tmp_path)
    killed: list[int] = []

    def kill_one_worker_mid_training(proc):
        """Once a point has recorded an epoch, SIGKILL the Ray worker that trains it."""
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            busy = cluster.busy_workers()
            if busy and _training(dlx):
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
                return
            time.sleep(0.2)

    proc, _, _ = _sweep(dlx, hosts, cluster, "trainer.epochs=6", during=kill_one_worker_mid_training)
    assert killed, proc.stdout + proc.stderr
    assert proc.returncode == 1, proc.stdout + proc.stderr
    parent, children = _children(dlx)
    status = sorted(r.info.status for r in children)
    assert status == ["FINISHED"] * 7 + ["KILLED"], status
    assert parent.info.status == "FINISHED" and parent.data.tags["dlx.children_failed"] == "1"
    (lost,) = [r for r in children if r.info.status == "KILLED"]
    (line,) = proc.stderr.strip().splitlines()
    assert line == (f"dlx: error: {lost.info.run_name}: its Ray worker died (WorkerCrashedError); "
                    "the sweep went on without this point"), proc.stderr
    assert "sweep: best of 8 runs" in proc.stdout
    print(f"\nray, one worker SIGKILLed mid-training: {status.count('FINISHED')} FINISHED + "
          f"{status.count('KILLED')} KILLED of 8, exit {proc.returncode}; stderr: {line}")


def _training(dlx: Dlx) -> bool:
    """Whether some point has recorded an epoch and not finished yet."""
    if not (dlx.cwd / "mlflow.db").exists():
        return False
    try:
        return any(r.info.status == "RUNNING" and "train_loss" in r.data.metrics
                   for r in dlx.runs())
    except Exception:  # noqa: BLE001 - the store is being created
        return False

