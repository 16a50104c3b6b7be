"""hydra/launcher=ray: a sweep's points as tasks on a Ray cluster (Ray 2.x).

The sweep's own process is Ray's driver: it composes every job as dlx's launcher does
(dlx/sweep/launcher.py), groups the points that share an epoch prefix (dlx/sweep/sharing.py)
and sends each group out as one Ray task, with the CPUs and the GPU its trainer.device needs.
A task runs its group's Hydra jobs on whichever node Ray picks; they record into the sweep's
parent run like any launcher's worker processes (dlx/sweep/callback.py). The driver says each
point as it comes back. A task whose worker dies (killed, out of memory, its node gone) loses
only its points: the sweep goes on, and the CLI names them at the end (launcher.lost).

Not the released hydra-ray-launcher: it pins cloudpickle 2.2.1, which joblib>=1.5 refuses.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Any, Sequence

from dlx.errors import ConfigError
from dlx.sweep import launcher, sharing
from dlx.sweep.callback import SWEEP_PID_ENV
from dlx.tracking.ranking import objective_key
from dlx.tracking.recorder import PARENT_ENV

DEFAULT_PORT = 6379  # `ray start --head`'s


def launch(hydra_context, task_function, config, job_overrides: Sequence[Sequence[str]],
           initial_job_idx: int, address: str | None, num_cpus: float, num_gpus: float | None,
           share_prefixes: bool) -> list:
    from hydra.core.singleton import Singleton
    from hydra.core.utils import configure_log, setup_globals

    ray = _ray()
    setup_globals()
    connect(ray, address)
    launcher.progress.expect(initial_job_idx + len(job_overrides), job_overrides)
    launcher.progress.started = launcher.progress.started or time.monotonic()
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    jobs = launcher.compose(hydra_context, config, job_overrides, initial_job_idx)
    groups, why = sharing.groups(jobs, share_prefixes, False)
    if why:
        launcher.say(why)
    env = {k: os.environ[k] for k in (PARENT_ENV, SWEEP_PID_ENV) if k in os.environ}
    state, cwd = Singleton.get_state(), os.getcwd()
    remote = ray.remote(run_group)
    pending = {}
    for group in groups:
        resources = {"num_cpus": num_cpus, "num_gpus": gpus(ray, group[0], num_gpus, address)}
        task = remote.options(**resources, max_retries=0, name=launcher.progress.label(
            group[0].idx, group[0].overrides))
        pending[task.remote(hydra_context, task_function, group, state, env, cwd)] = group
    returns = {}
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        group = pending.pop(ref)
        try:
            node, rets = ray.get(ref)
        except ray.exceptions.RayError as e:  # the task's worker (or node) died
            node, rets = None, [_lost(job, e) for job in group]
        for job, ret in zip(group, rets):
            returns[job.idx] = ret
            _say(job, ret, node)
    return [returns[j.idx] for j in jobs]


def run_group(hydra_context, task_function, group: list[sharing.Job], state: Any,
              env: dict[str, str], cwd: str):
    """In a Ray worker: the group's jobs, as dlx's launcher runs them in its own process, with
    the sweep's Hydra state, environment (its parent run) and working directory (where relative
    paths in the config point, where that folder exists on this node)."""
    import ray
    from hydra.core.singleton import Singleton
    from hydra.core.utils import setup_globals

    Singleton.set_state(state)
    setup_globals()
    os.environ.update(env)
    if os.path.isdir(cwd):
        os.chdir(cwd)
    return ray.util.get_node_ip_address(), launcher.run_group(hydra_context, task_function, group)


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


def _lost(job: sharing.Job, error: BaseException):
    """The JobReturn of a point whose task died: the worst objective, so that the sweeper ranks
    it last and goes on (Hydra's sweepers read every return value)."""
    from hydra.core.utils import JobReturn, JobStatus

    what = "node" if type(error).__name__ == "NodeDiedError" else "worker"
    launcher.lost[str(job.output_dir)] = (f"its Ray {what} died ({type(error).__name__}); the "
                                          "sweep went on without this point")
    worst = sys.float_info.max if job.config.trainer.monitor_mode == "min" else -sys.float_info.max
    return JobReturn(overrides=job.overrides, cfg=job.config, working_dir=str(job.output_dir),
                     status=JobStatus.COMPLETED, _return_value=worst)


def _say(job: sharing.Job, ret, node: str | None) -> None:
    """`point 3/8 (...) on 10.0.0.2: 0.1234 … ~20s left`, as each point comes back."""
    launcher.progress.end()
    label = launcher.progress.label(job.idx, job.overrides)
    value = ret.return_value if ret.status.name == "COMPLETED" else None
    if node is None:
        outcome = f"lost: {launcher.lost[str(job.output_dir)]}"
    elif value is None or abs(value) == sys.float_info.max:
        outcome = f"on {node}: failed"
    else:
        trainer = job.config.trainer
        outcome = f"on {node}: {objective_key(trainer.monitor, trainer.cv_folds)}={value:.4f}"
    launcher.say(f"{label} {outcome}{launcher.progress.left()}")


def _ray():
    try:
        import ray
    except ModuleNotFoundError as e:
        raise ConfigError("hydra/launcher=ray needs Ray, which is not installed here: "
                          "pip install 'ray>=2.9'") from e
    return ray
