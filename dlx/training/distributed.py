"""trainer.strategy=ddp: torch DistributedDataParallel under torchrun.

    torchrun --nproc_per_node=2 -m dlx train trainer.strategy=ddp ...

torchrun starts N copies of `dlx train` and gives each RANK, WORLD_SIZE, LOCAL_RANK and the
rendezvous address. Every rank loads the same data and builds the same model (DDP broadcasts
rank 0's weights); each batch of `dataset.batch_size` rows is split between the ranks
(`shard`), DDP averages the gradients, so N ranks train like one process with the same global
batch. Rank 0 alone tracks, checkpoints and reports; metrics are summed over ranks once per epoch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from dlx.errors import ConfigError
from dlx.runtime import launched


@dataclass
class Group:
    """This process's place in the DDP group."""

    rank: int
    size: int
    backend: str

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a batch: every size-th row from `rank`, so the ranks' rows are
        disjoint and together are the whole batch."""
        return idx[self.rank :: self.size]

    def sum(self, *tensors: torch.Tensor) -> None:
        """Sum tensors over the ranks, in place (the once-per-epoch metric sync)."""
        for t in tensors:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)

    def max(self, t: torch.Tensor) -> None:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)

    def sync_buffers(self, model: torch.nn.Module) -> None:
        """Rank 0's buffers (batch-norm running statistics) on every rank."""
        for buf in model.buffers():
            dist.broadcast(buf, 0)

    def describe(self, rows: torch.Tensor) -> dict:
        """What the ranks trained on, from each rank's mask of the rows it saw in an epoch."""
        per_rank = [None] * self.size
        dist.all_gather_object(per_rank, int(rows.sum()))
        count = rows.to(torch.int32)
        dist.all_reduce(count, op=dist.ReduceOp.SUM)
        return {"world_size": self.size, "backend": self.backend, "rows_per_rank": per_rank,
                "rows_seen_by_several_ranks": int((count > 1).sum()),
                "rows_seen": int((count > 0).sum()), "rows": len(rows)}

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def setup(strategy: str, device: torch.device, in_sweep: bool) -> tuple[Group | None, torch.device]:
    """trainer.strategy -> (the process group or None, this rank's device).
    auto: DDP when started by torchrun with WORLD_SIZE > 1, else one process."""
    if strategy == "single" or (strategy == "auto" and not launched()):
        return None, device
    if not launched():
        raise ConfigError("trainer.strategy=ddp needs several processes: start it with "
                          "`torchrun --nproc_per_node=N -m dlx train trainer.strategy=ddp ...`")
    if in_sweep:
        raise ConfigError("trainer.strategy=ddp trains one run over several processes: drop -m "
                          "(or sweep with trainer.strategy=single)")
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise ConfigError(f"DDP rank with LOCAL_RANK={local} but only {torch.cuda.device_count()} "
                              "CUDA device(s): lower --nproc_per_node or use trainer.device=cpu")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(minutes=10))
    return Group(dist.get_rank(), dist.get_world_size(), backend), device
