"""DDP over two nodes: two torchrun agents, `--nnodes=2 --rdzv-backend=c10d`, one process each,
meet at a rendezvous on 127.0.0.1 and train one run, tracked on the team's server. They share a
working folder, as nodes share a filesystem: rank 0 writes the checkpoints that a resumed run
(again on two nodes) reads on every rank."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster.servers import free_port

pytestmark = pytest.mark.cluster

RUN = ("model=mlp", "dataset.batch_size=64", "trainer.seed=3", "trainer.progress=false",
       "tracking.log_model=false", "trainer.strategy=ddp", "trainer.checkpoint_every=1")


def _two_nodes(team, *overrides: str) -> list[subprocess.CompletedProcess]:
    """Node 0 and node 1 started at once, each a torchrun agent with one worker."""
    port = free_port()
    procs = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
         f"--node_rank={node}", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}",
         "--rdzv-id=dlx-two-nodes", "--max-restarts=0",
         "-m", "dlx", "train", *team.overrides, *RUN, *overrides],
        cwd=team.cwd, env={**team.env, "MASTER_ADDR": "127.0.0.1"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True) for node in (0, 1)]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    return [subprocess.CompletedProcess(p.args, p.returncode, *o) for p, o in zip(procs, outs)]


def test_two_torchrun_nodes_train_one_run_and_resume_it(team):
    began = time.time()
    nodes = _two_nodes(team, "trainer.epochs=2")
    seconds = time.time() - began
    assert [n.returncode for n in nodes] == [0, 0], [n.stderr[-2000:] for n in nodes]
    assert sum(n.stdout.count("test_accuracy=") for n in nodes) == 1  # rank 0 alone reports

    (run,) = team.runs()  # one MLflow run for the two nodes
    assert run.info.status == "FINISHED"
    assert run.data.tags["dlx.world_size"] == "2" and run.data.tags["dlx.backend"] == "gloo"
    assert team.steps(run.info.run_id) == [1, 2] == team.steps(run.info.run_id, "val_loss")
    shards = json.loads(Path(team.client().download_artifacts(
        run.info.run_id, "distributed.json", str(team.cwd))).read_text())
    assert shards["world_size"] == 2 and shards["rows_seen_by_several_ranks"] == 0
    assert shards["rows_seen"] == shards["rows"]
    # rank 0 alone wrote a run dir and its checkpoints
    (folder,) = [Path(p) for p in team.cwd.glob("outputs/runs/*/*") if Path(p).is_dir()]
    assert (folder / "checkpoints" / "last.pt").is_file()

    # the run goes on, on two nodes again, from its MLflow id: the same run, epochs 3 and 4
    nodes = _two_nodes(team, "trainer.epochs=4", f"trainer.resume={run.info.run_id}")
    assert [n.returncode for n in nodes] == [0, 0], [n.stderr[-2000:] for n in nodes]
    (again,) = team.runs()
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    assert again.data.tags["dlx.resumed_from_epoch"] == "2"
    assert team.steps(run.info.run_id) == [1, 2, 3, 4] == team.steps(run.info.run_id, "val_loss")
    assert again.data.metrics["test_accuracy"] > 0.8
    print(f"\ntwo nodes x 1 gloo rank: 2 epochs in {seconds:.1f} s (whole processes), resumed "
          f"to 4; runs recorded 1/1, val_loss steps {len(team.steps(run.info.run_id))}/4")
