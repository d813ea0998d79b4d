"""What runs the plain networks fast: the CUDA backends' flags, channels_last, DDP and torch.compile wrappers.

Usage:
    from pipeline.train.wrappers import configure_backends, wrap_for_speed
    configure_backends(params.train, on_cuda=True)     # cudnn/TF32/deterministic flags from train.deterministic
    wrap_for_speed(nets, speed, dist_info)             # sets nets.g_train, nets.d_train, nets.d_frozen, nets.autocast

Speed settings apply to the wrappers only: checkpoints always hold the plain modules' tensors (nets.g, nets.d).
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.core.config import TrainParams
from pipeline.core.distributed import DistInfo
from pipeline.core.speed import SpeedSettings
from pipeline.train.families import Nets


def configure_backends(params: TrainParams, on_cuda: bool) -> None:
    if not on_cuda:
        return  # CPU kernels are deterministic already
    torch.backends.cudnn.benchmark = not params.deterministic
    torch.backends.cudnn.deterministic = params.deterministic
    torch.backends.cuda.matmul.allow_tf32 = not params.deterministic
    torch.backends.cudnn.allow_tf32 = not params.deterministic
    if params.deterministic:
        torch.use_deterministic_algorithms(True)


def wrap_for_speed(nets: Nets, speed: SpeedSettings, dist_info: DistInfo) -> None:
    device = dist_info.device
    if speed.channels_last:
        nets.g.to(memory_format=torch.channels_last)
        nets.d.to(memory_format=torch.channels_last)
        if nets.ema is not None:
            nets.ema.module.to(memory_format=torch.channels_last)
    g_run: nn.Module = nets.g
    d_run: nn.Module = nets.d
    if dist_info.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        g_run, d_run = DDP(nets.g, device_ids=ids), DDP(nets.d, device_ids=ids)
    d_plain: nn.Module = nets.d  # the generator step: frozen critic, no DDP gradient sync needed
    if speed.compile:
        g_run, d_run, d_plain = torch.compile(g_run), torch.compile(d_run), torch.compile(nets.d)
    nets.g_train, nets.d_train, nets.d_frozen = g_run, d_run, d_plain
    nets.autocast = speed.autocast
