"""Exponential moving average of the generator's weights: the generator later stages sample from.

Usage:
    from pipeline.train.ema import GeneratorEMA
    ema = GeneratorEMA(generator, decay=0.999)   # a frozen eval-mode copy
    ema.update(generator, step)                  # after each generator step
    ema = GeneratorEMA(generator, ema_kimg=10, rampup=0.05, batch_size=64, images_per_step=64)  # StyleGAN2-ADA
    ema.module(z)                                # sample
    ema.module.state_dict()                      # what generator.pt holds

With a decay (the course presets' rule) the decay ramps up as min(decay, (1 + step) / (10 + step)) so that short
runs (the course's 1-epoch baseline is 1,115 steps) are not dominated by the random initial weights.
With ema_kimg > 0 it is StyleGAN2-ADA's rule: the half-life is min(ema_kimg * 1000, images_seen * rampup)
images, images_seen counted before this step, so the decay per step is 0.5 ** (batch_size / half_life): the
EMA copies G at step 0 and forgets its start quickly while few images have been seen. Both rules are pure
functions of the step. Buffers (BatchNorm running statistics) are copied, not averaged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class GeneratorEMA:
    def __init__(
        self,
        generator: nn.Module,
        decay: float = 0.0,
        ema_kimg: float = 0.0,
        rampup: float = 0.0,
        batch_size: int = 1,
        images_per_step: int = 1,
    ) -> None:
        self.decay = decay
        self.ema_kimg, self.rampup = ema_kimg, rampup
        self.batch_size, self.images_per_step = batch_size, images_per_step
        self.module = copy.deepcopy(generator).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        if self.ema_kimg <= 0:
            return min(self.decay, (1 + step) / (10 + step))
        half_life = self.ema_kimg * 1000
        if self.rampup > 0:
            half_life = min(half_life, step * self.images_per_step * self.rampup)
        return 0.5 ** (self.batch_size / max(half_life, 1e-8))

    @torch.no_grad()
    def update(self, generator: nn.Module, step: int) -> None:
        d = self.decay_at(step)
        ema_params = list(self.module.parameters())
        params = [p.detach() for p in generator.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - d)
        for b_ema, b in zip(self.module.buffers(), generator.buffers(), strict=True):
            b_ema.copy_(b)
