"""What one call of train_gan will do: where it writes, how many steps, how many images each step takes.

Usage:
    from pipeline.train.plan import TrainPaths, check_faces, plan_steps
    check_faces(faces)                                  # uint8 (N, H, W, 3), square; else UserError
    plan = plan_steps(params.train, count=len(faces), world_size=1)
    plan.total_steps, plan.steps_per_epoch, plan.per_rank, plan.images_per_step

A step is train.n_critic critic updates (one batch each) and one generator update. An epoch is
(N // batch_size) // n_critic steps, so every batch is full; train.max_steps (when > 0) cuts the run shorter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.config import TrainParams
from pipeline.core.errors import UserError


@dataclass(frozen=True)
class TrainPaths:
    checkpoint: Path  # the resumable checkpoint (pipeline/train/checkpoint.py)
    generator: Path  # generator.pt, what later stages sample (pipeline/train/generator_file.py)
    best: Path | None = None  # best.pt, the best scored snapshot (pipeline/train/best_file.py); None: not written


@dataclass(frozen=True)
class Plan:
    per_rank: int  # images per batch on each rank
    steps_per_epoch: int
    total_steps: int
    images_per_step: int  # real images consumed per step by all ranks together


def check_faces(faces: np.ndarray) -> None:
    if not isinstance(faces, np.ndarray) or faces.dtype != np.uint8 or faces.ndim != 4 or faces.shape[-1] != 3:
        raise UserError(f"faces must be uint8 (N, H, W, 3), got {getattr(faces, 'dtype', type(faces))} "
                        f"{getattr(faces, 'shape', '')}")  # fmt: skip
    if faces.shape[1] != faces.shape[2]:
        raise UserError(f"faces must be square, got {faces.shape[1]}x{faces.shape[2]}")


def plan_steps(params: TrainParams, count: int, world_size: int) -> Plan:
    if params.batch_size % world_size:
        raise UserError(f"train.batch_size {params.batch_size} is not a multiple of the {world_size} processes")
    steps_per_epoch = (count // params.batch_size) // params.n_critic
    if steps_per_epoch == 0:
        raise UserError(
            f"only {count} faces: one step needs train.batch_size x train.n_critic = "
            f"{params.batch_size * params.n_critic}"
        )
    total = params.epochs * steps_per_epoch
    if params.max_steps:
        total = min(total, params.max_steps)
    return Plan(
        per_rank=params.batch_size // world_size,
        steps_per_epoch=steps_per_epoch,
        total_steps=total,
        images_per_step=params.batch_size * params.n_critic,
    )
