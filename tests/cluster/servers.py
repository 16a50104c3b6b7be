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


RAY = Path(sys.executable).with_name("ray")  # the venv's


class Hosts:
    """Two hosts of the test's own on this machine: network namespaces joined by a veth pair,
    10.254.0.1 and 10.254.0.2 (needs root: `ip netns`). They share this machine's filesystem,
    as cluster nodes share one. `run(host, argv)` runs a command on a host."""

    ADDRESSES = ("10.254.0.1", "10.254.0.2")

    def __init__(self):
        tag = f"dlx{os.getpid() % 100000}"
        self.names = (f"{tag}a", f"{tag}b")
        self.made: list[str] = []

    def start(self) -> None:
        ip = ["ip"]
        for name in self.names:
            subprocess.run([*ip, "netns", "add", name], check=True, capture_output=True)
            self.made.append(name)
        a, b = self.names
        subprocess.run([*ip, "link", "add", f"{a}0", "netns", a, "type", "veth", "peer", "name",
                        f"{b}0", "netns", b], check=True, capture_output=True)
        for name, address in zip(self.names, self.ADDRESSES):
            for argv in (["addr", "add", f"{address}/24", "dev", f"{name}0"],
                         ["link", "set", f"{name}0", "up"], ["link", "set", "lo", "up"]):
                subprocess.run([*ip, "-n", name, *argv], check=True, capture_output=True)

    def run(self, host: int, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.names[host], *argv]

    def stop(self) -> None:
        for name in self.made:  # the veth pair goes with its namespaces
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.made = []


class RayCluster:
    """A real Ray cluster on `hosts`: `ray start --head` on the first, a second node joined to it
    with `ray start --address=...` on the second, one CPU each, with Ray's token authentication
    (`auth`: what every node and driver has in its environment); stopped by pid (each `ray
    start --block` leads its own process group: its raylet and agents; workers are found by
    parentage)."""

    PORT = 6379

    def __init__(self, hosts: Hosts, root: Path, cpus: int = 1):
        import secrets

        self.hosts, self.root, self.cpus = hosts, root, cpus
        self.address = f"{hosts.ADDRESSES[0]}:{self.PORT}"
        self.auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.env = {**os.environ, **self.auth}
        self.nodes: list[subprocess.Popen] = []

    def _node(self, host: int, *argv: str) -> subprocess.Popen:
        log = open(self.root / f"ray-node{host}.log", "w")
        common = ["--block", f"--node-ip-address={self.hosts.ADDRESSES[host]}",
                  f"--num-cpus={self.cpus}", "--num-gpus=0", "--disable-usage-stats",
                  "--object-store-memory=100000000", f"--temp-dir={self.root / f'ray{host}'}"]
        proc = subprocess.Popen(self.hosts.run(host, [str(RAY), "start", *argv, *common]),
                                stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                start_new_session=True)
        self.nodes.append(proc)
        return proc

    def start(self, nodes: int = 2, timeout: float = 120) -> None:
        self._node(0, "--head", f"--port={self.PORT}", "--include-dashboard=false")
        for host in range(1, nodes):
            self._node(host, f"--address={self.address}")
        self.wait(nodes, timeout)

    def wait(self, nodes: int, timeout: float = 120) -> None:
        """Until the cluster has `nodes` alive nodes (asked from the head's host)."""
        ask = (f"import ray; ray.init(address='{self.address}', logging_level='ERROR'); "
               "print(sum(n['Alive'] for n in ray.nodes()))")
        deadline, out = time.time() + timeout, None
        while time.time() < deadline:
            if any(p.poll() is not None for p in self.nodes):
                break
            out = subprocess.run(self.hosts.run(0, [sys.executable, "-c", ask]), text=True,
                                 capture_output=True, timeout=60, env=self.env)
            if out.stdout.strip().endswith(str(nodes)):
                return
            time.sleep(1)
        asked = f"{out.stdout[-1000:]}{out.stderr[-2000:]}" if out else ""
        raise RuntimeError(f"the Ray cluster did not come up with {nodes} nodes:\n{asked}\n"
                           + self.log())

    def add_node(self) -> None:
        """One more node, on the next host."""
        self._node(len(self.nodes), f"--address={self.address}")
        self.wait(len(self.nodes))

    def busy_workers(self) -> list[int]:
        """The pids of the cluster's Ray workers that are running a task now (a worker's process
        title is `ray::IDLE` between tasks)."""
        return [p.pid for p in self._processes()
                if p.info["cmdline"] and p.info["cmdline"][0].startswith("ray::")
                and p.info["cmdline"][0] not in ("ray::IDLE", "ray::DashboardAgent",
                                                 "ray::RuntimeEnvAgent")]

    def _processes(self) -> list:
        """Every process the nodes started (raylets, agents, workers and their children)."""
        import psutil

        found = []
        for node in self.nodes:
            try:
                for p in psutil.Process(node.pid).children(recursive=True):
                    try:
                        p.info = {"cmdline": p.cmdline()}
                        found.append(p)
                    except psutil.Error:
                        continue
            except psutil.Error:
                continue
        return found

    def log(self) -> str:
        return "\n".join((self.root / f"ray-node{h}.log").read_text()[-1500:]
                         for h in range(len(self.nodes))
                         if (self.root / f"ray-node{h}.log").exists())

    def stop(self) -> None:
        left = self._processes()  # workers lead process groups of their own
        for proc in self.nodes:
            _stop(proc, timeout=30)
        for p in left:
            try:
                p.kill()
            except Exception:  # noqa: BLE001 - gone already
                pass
        self.nodes = []
