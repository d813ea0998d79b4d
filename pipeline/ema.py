"""Exponential moving average of the generator's weights: the generator later stages sample from.

Usage:
    from pipeline.ema import GeneratorEMA
    ema = GeneratorEMA(generator, decay=0.999)   # a frozen eval-mode copy
    ema.update(generator, step)                  # after each generator step
    ema.module(z)                                # sample
    ema.module.state_dict()                      # what generator.pt holds

The decay ramps up as min(decay, (1 + step) / (10 + step)) so that short runs (the course's 1-epoch baseline is
1,115 steps) are not dominated by the random initial weights. Buffers (BatchNorm running statistics) are copied,
not averaged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class GeneratorEMA:
    def __init__(self, generator: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(generator).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, generator: nn.Module, step: int) -> None:
        d = self.decay_at(step)
        ema_params = list(self.module.parameters())
        params = [p.detach() for p in generator.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - d)
        for b_ema, b in zip(self.module.buffers(), generator.buffers(), strict=True):
            b_ema.copy_(b)
