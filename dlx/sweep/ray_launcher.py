"""hydra/launcher=ray: a sweep's points as tasks on a Ray cluster (Ray 2.x).

The sweep's own process is Ray's driver: it composes every job and groups the points that share
a training exactly as dlx's launcher does (dlx/sweep/launcher.py, dlx/sweep/sharing.py), and sends
each group out as one Ray task, with the CPUs and the GPU its trainer.device needs. The task is the
sweep layer's one function (dlx/sweep/points.py) on whichever node Ray picks: the points, nested
under the sweep's parent run, train there and record into the store; their outcomes come back.
The driver then records each point's Hydra job and says it (`point 3/8 (...) on 10.0.0.2: ...`).
A task whose worker dies (killed, out of memory, its node gone) loses only its points: the sweep
goes on, their runs end KILLED, and the CLI names them at the end.

Not the released hydra-ray-launcher: it pins cloudpickle 2.2.1, which joblib>=1.5 refuses.
"""

from __future__ import annotations

import os
import socket
from typing import Sequence

from dlx.errors import ConfigError
from dlx.runtime import Point
from dlx.sweep import launcher, sharing
from dlx.sweep.points import Outcome
from dlx.sweep.session import session_of

DEFAULT_PORT = 6379  # `ray start --head`'s


def launch(hydra_context, task_function, config, job_overrides: Sequence[Sequence[str]],
           initial_job_idx: int, address: str | None, num_cpus: float, num_gpus: float | None,
           share_prefixes: bool, fuse: str = "auto") -> list:
    import time

    from hydra.core.utils import configure_log, setup_globals

    session = session_of(task_function)
    ray = _ray()
    setup_globals()
    connect(ray, address)
    session.progress.expect(initial_job_idx + len(job_overrides), job_overrides)
    session.progress.started = session.progress.started or time.monotonic()
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    jobs = launcher.compose(hydra_context, config, job_overrides, initial_job_idx)
    groups, why = sharing.groups(jobs, share_prefixes, sharing.stacks(fuse, config))
    if why:
        session.listener.line(why)
    remote, cwd = ray.remote(train_remote), os.getcwd()
    pending = {}
    for group in groups:
        points = [session.nest(job.point()) for job in group]
        resources = {"num_cpus": num_cpus, "num_gpus": gpus(ray, group[0], num_gpus, address)}
        task = remote.options(**resources, max_retries=0, name=session.progress.label(
            group[0].idx, group[0].overrides))
        pending[task.remote(points, str(fuse).lower(), cwd)] = (group, points)
    returns = {}
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        group, points = pending.pop(ref)
        try:
            node, got = ray.get(ref)
            outcomes = [Outcome(p, result=r, error=e) for p, (r, e) in zip(points, got)]
        except ray.exceptions.RayError as e:  # the task's worker (or node) died
            node, outcomes = None, [_lost(p, e) for p in points]
        for job, outcome in zip(group, outcomes):
            objective = session.record(outcome, job.idx, node)
            returns[job.idx] = launcher.record(hydra_context, job, objective)
    return [returns[j.idx] for j in jobs]


def train_remote(points: list[Point], fuse: str, cwd: str):
    """In a Ray worker: the group's points, trained by the sweep layer's one function, in the
    driver's working directory (where relative paths in the config point) where that folder
    exists on this node; their records in the store before it returns. Its node and each
    point's (Result, error line)."""
    import ray

    from dlx.sweep.points import train

    if os.path.isdir(cwd):
        os.chdir(cwd)
    outcomes = train(points, fuse=fuse, in_worker=True)
    return ray.util.get_node_ip_address(), [(o.result, o.error) for o in outcomes]


def connect(ray, address: str | None) -> None:
    """Join the cluster at `address` (null: Ray's own rule, RAY_ADDRESS or the cluster started
    on this machine, else a new local one); a host:port that does not answer is one line at
    once, not Ray's minutes of retries."""
    if ray.is_initialized():
        return
    if address not in (None, "auto", "local"):
        host, _, port = str(address).removeprefix("ray://").rpartition(":")
        host, port = (host, port) if port.isdigit() else (str(address), str(DEFAULT_PORT))
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as e:
            raise ConfigError(
                f"cannot reach the Ray cluster at hydra.launcher.address={address} "
                f"({e.strerror or e}): start it there with `ray start --head --port={port}`, "
                "or check the address") from e
    try:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR",
                 **({} if address else {"include_dashboard": False}))
    except Exception as e:  # noqa: BLE001 - Ray's own reasons (a token refused, versions differ)
        why = " ".join(str(e).split())
        raise ConfigError(f"cannot join the Ray cluster at hydra.launcher.address={address}: "
                          f"{why[:300]}") from e


def gpus(ray, job: sharing.Job, num_gpus: float | None, address: str | None) -> float:
    """hydra.launcher.num_gpus, or what the group's trainer.device needs: one GPU for cuda
    (and for auto on a cluster that has GPUs), none for cpu."""
    if num_gpus is not None:
        return num_gpus
    device = str(job.config.trainer.device)
    have = ray.cluster_resources().get("GPU", 0)
    if device.startswith("cuda") and not have:
        raise ConfigError(f"trainer.device={device} and the Ray cluster at {address or 'auto'} "
                          "has no GPU: use trainer.device=auto (or cpu), or add a node with one")
    return 1 if have and device != "cpu" else 0


def _lost(point: Point, error: BaseException) -> Outcome:
    """A point whose task died: the sweep goes on without it (its run, if it started, is ended
    KILLED by the parent with this line)."""
    what = "node" if type(error).__name__ == "NodeDiedError" else "worker"
    return Outcome(point, error=f"its Ray {what} died ({type(error).__name__}); the sweep went on "
                   "without this point", lost=True)


def _ray():
    try:
        import ray
    except ModuleNotFoundError as e:
        raise ConfigError("hydra/launcher=ray needs Ray, which is not installed here: "
                          "pip install 'ray>=2.9'") from e
    return ray
