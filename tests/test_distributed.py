"""trainer.strategy=ddp: two CPU processes under torchrun (gloo) train one run like one process.

Each global batch of dataset.batch_size rows is split between the ranks and DDP averages their
gradients, so 2 ranks follow the 1-process run up to floating-point summation order and the
last, unevenly split batch of each epoch. Stated tolerance: every epoch's val_loss within 0.01
and test accuracy within 0.01 of the 1-process run's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

RUN = ["model=mlp", "dataset.batch_size=64", "trainer.epochs=3", "trainer.seed=3",
       "trainer.progress=false", "tracking.log_model=false"]


def torchrun(dlx, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--standalone", "-m", "dlx", "train", *args]
    return subprocess.run(cmd, cwd=dlx.cwd, env=dlx.env, capture_output=True, text=True, timeout=300)


def history(client, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def test_two_gloo_ranks_log_one_run_on_disjoint_shards_matching_one_process(dlx):
    ddp = torchrun(dlx, *RUN, "trainer.strategy=ddp", "tracking.experiment=ddp")
    assert ddp.returncode == 0, ddp.stdout + ddp.stderr
    assert ddp.stdout.count("test_accuracy=") == 1  # rank 0 reports; rank 1 stays quiet
    dlx.train(*RUN, "trainer.strategy=single", "tracking.experiment=single")

    client = dlx.client()
    [run] = dlx.runs("ddp")  # one MLflow run for the two processes
    [one] = dlx.runs("single")
    assert run.info.status == "FINISHED"
    assert run.data.tags["dlx.world_size"] == "2" and run.data.tags["dlx.backend"] == "gloo"

    # each rank saw its own shard: no row trained on by both, every row by one of them
    shards = json.loads(Path(client.download_artifacts(run.info.run_id, "distributed.json",
                                                       dlx.cwd)).read_text())
    assert shards["world_size"] == 2 and shards["rows_seen_by_several_ranks"] == 0
    assert shards["rows_seen"] == shards["rows"] == sum(shards["rows_per_rank"])
    assert min(shards["rows_per_rank"]) >= shards["rows"] // 2 - 32  # about half each

    # metrics follow the 1-process run within the stated tolerance
    ddp_val, one_val = history(client, run.info.run_id, "val_loss"), history(client, one.info.run_id, "val_loss")
    assert len(ddp_val) == len(one_val) == 3
    assert max(abs(a - b) for a, b in zip(ddp_val, one_val)) <= 0.01, (ddp_val, one_val)
    assert abs(run.data.metrics["test_accuracy"] - one.data.metrics["test_accuracy"]) <= 0.01
    assert one.data.metrics["test_accuracy"] > 0.8

    # rank 1 leaves no run dir of its own
    assert len(list((dlx.cwd / "outputs" / "runs").glob("*/*"))) == 2


@pytest.mark.parametrize("args, message", [
    (["trainer.strategy=ddp"], "start it with `torchrun --nproc_per_node=N -m dlx train"),
    (["trainer.strategy=ring"], "trainer.strategy=ring is not one of auto, single, ddp"),
])
def test_ddp_outside_torchrun_is_one_clear_line(dlx, args, message):
    proc = dlx.train("model=logistic", "trainer.epochs=1", *args, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr
    assert all(r.info.status != "RUNNING" for r in dlx.runs())
