"""Where this process runs: rank and world size under torchrun (DDP), its device, and small collectives.

Usage:
    from pipeline.core.distributed import init_distributed
    dist_info = init_distributed()        # reads RANK / WORLD_SIZE / LOCAL_RANK set by torchrun; else one process
    dist_info.device, dist_info.rank, dist_info.world_size, dist_info.is_main
    obj = dist_info.broadcast_object(obj)  # rank 0's object on every rank
    dist_info.close()

One process (no torchrun): rank 0 of 1, CUDA if available else CPU. Under torchrun the backend is NCCL on CUDA
and gloo on CPU; each process takes GPU LOCAL_RANK. Multi-node needs no shared filesystem: rank 0 reads the
checkpoint and broadcasts it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def broadcast_object(self, obj: Any) -> Any:
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def all_gather_object(self, obj: Any) -> list[Any]:
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(prefer_cuda: bool = True) -> DistInfo:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = prefer_cuda and torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    owns = False
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(minutes=30),
            device_id=device if use_cuda else None,
        )
        owns = True
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device, owns_group=owns)
