"""Checks that stop a run before it writes a bad checkpoint: finite weights, and equal weights on every DDP rank.

Usage:
    from pipeline.train.health import check_finite_weights, check_ranks_in_sync, weights_digest
    check_finite_weights(step, checkpoint_path, g, d)   # UserError (diverged) naming the last good checkpoint
    check_ranks_in_sync(dist_info, step, g, d, ema)     # RuntimeError when DDP ranks disagree
    weights_digest(g)                                   # sha256 of parameter names and bytes (metrics/train.json)
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path

import torch
from torch import nn

from pipeline.core.distributed import DistInfo
from pipeline.core.errors import UserError
from pipeline.train.ema import GeneratorEMA

log = logging.getLogger(__name__)

DIVERGED_HINT = "Lower train.lr_d / train.lr_g or change train.loss, then start over"


def weights_digest(*modules: nn.Module) -> str:
    """sha256 of the modules' parameters (names and raw bytes): equal digests, equal weights."""
    h = hashlib.sha256()
    for m in modules:
        for name, p in m.named_parameters():
            h.update(name.encode())
            h.update(p.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_ranks_in_sync(dist_info: DistInfo, step: int, g: nn.Module, d: nn.Module, ema: GeneratorEMA | None) -> None:
    """DDP keeps parameters equal on every rank (BatchNorm running statistics legitimately differ); verify it."""
    if not dist_info.distributed:
        return
    digest = weights_digest(g, d, *([ema.module] if ema is not None else []))
    digests = dist_info.all_gather_object(digest)
    if len(set(digests)) != 1:
        raise RuntimeError(f"DDP ranks out of sync at step {step}: weight digests {digests}")
    log.info("step %d: rank %d weights %s, equal on all %d ranks", step, dist_info.rank, digest[:16], len(digests))


def check_finite_weights(step: int, path: Path, *modules: nn.Module) -> None:
    for m in modules:
        if not all(torch.isfinite(p).all() for p in m.parameters()):
            raise UserError(f"training diverged: non-finite weights at step {step}; {path} keeps the last good state. "
                            f"{DIVERGED_HINT}")  # fmt: skip


def check_finite_values(values: dict[str, float], step: int, path: Path) -> None:
    for name, value in values.items():
        if not math.isfinite(value):
            raise UserError(f"training diverged: {name} is {value} by step {step}; {path} keeps the last good state. "
                            f"{DIVERGED_HINT}")  # fmt: skip
