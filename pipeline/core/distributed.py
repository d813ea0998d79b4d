"""Where this process runs: rank and world size under torchrun (DDP), its device, and small collectives.

Usage:
    from pipeline.core.distributed import init_distributed
    dist_info = init_distributed(params.device)   # reads RANK / WORLD_SIZE / LOCAL_RANK from torchrun; else one process
    dist_info.device, dist_info.rank, dist_info.world_size, dist_info.is_main
    obj = dist_info.broadcast_object(obj)  # rank 0's object on every rank
    dist_info.any_rank(time.time() > deadline)  # True on every rank when it is True on one (on the CPU: no GPU sync)
    dist_info.close()

Started by pipeline.core.launch (train.processes) the environment is the same as under torchrun.
One process (no torchrun): rank 0 of 1, on the device the `device` param names (auto: CUDA, else MPS, else CPU).
Under torchrun the backend is NCCL on CUDA and gloo on CPU; each process takes GPU LOCAL_RANK. Multi-node needs no
shared filesystem: rank 0 reads the checkpoint and broadcasts it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from pipeline.core.device import resolve_device


@dataclass
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False
    cpu_group: Any = field(default=None, repr=False)  # a gloo group for any_rank (NCCL's default group is GPU-only)

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

    def any_rank(self, flag: bool) -> bool:
        """Whether flag is True on any rank: one small all-reduce through gloo on the CPU, so a check made every
        step never waits for the GPU. Every rank must call it at the same point (the first call makes the group)."""
        if not self.distributed:
            return flag
        if self.cpu_group is None:
            self.cpu_group = dist.group.WORLD if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
        box = torch.tensor([int(flag)], dtype=torch.int32)
        dist.all_reduce(box, op=dist.ReduceOp.MAX, group=self.cpu_group)
        return bool(box.item())

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device_setting: str = "auto") -> DistInfo:
    """This process's rank and device: `device_setting` as pipeline.core.device resolves it (under torchrun,
    `auto` and `cuda` mean GPU LOCAL_RANK); a device that cannot run is a UserError before any group starts."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_setting, local_rank, world_size)
    use_cuda = device.type == "cuda"
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
