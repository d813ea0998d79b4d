"""The paper's (R3GAN's) hyperparameter schedules: lr, Adam beta2 and the R1/R2 gamma on a cosine, by step.

Usage:
    from pipeline.train.schedules import cosine, schedule_at
    cosine(start=2.0, end=0.2, done=0.5)              # 1.1: half-way along the cosine
    values = schedule_at(params.train, step=120, images_per_step=64)
    values.lr_g, values.lr_d, values.beta2, values.gamma

Each value runs from its start (train.lr_g, train.lr_d, train.betas[1], train.gamma) to its end (train.lr_g_end,
train.lr_d_end, train.beta2_end, train.gamma_end; null keeps the start) over the first train.schedule_kimg
thousand real images, then holds the end, as R3GAN's cosine_decay_with_warmup does over its decay_nimg. A value
is a pure function of the step (never of the run's length or the optimizer's state), so a resumed run and a
longer run that continues a shorter one see the same values at the same step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.core.config import TrainParams


@dataclass(frozen=True)
class ScheduleValues:
    lr_g: float
    lr_d: float
    beta2: float
    gamma: float


def cosine(start: float, end: float | None, done: float) -> float:
    """start at done = 0, end at done >= 1, half-cosine in between; end None: start throughout."""
    if end is None:
        return start
    done = min(max(done, 0.0), 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * done))


def schedule_at(params: TrainParams, step: int, images_per_step: int) -> ScheduleValues:
    """The scheduled values for generator step `step` (0-based), from the real images seen before it."""
    done = step * images_per_step / (params.schedule_kimg * 1000.0)
    return ScheduleValues(
        lr_g=cosine(params.lr_g, params.lr_g_end, done),
        lr_d=cosine(params.lr_d, params.lr_d_end, done),
        beta2=cosine(params.betas[1], params.beta2_end, done),
        gamma=cosine(params.gamma, params.gamma_end, done),
    )
