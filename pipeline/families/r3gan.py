"""The R3GAN family (pipeline/r3gan.py): its generator and critic, trained by the shared loop and objectives.

Usage:
    from pipeline.families import family_for
    family = family_for(params.train, image_size=64)   # train.model: r3gan, train.r3gan_preset: paper|small|tiny
    g, d = family.build()

The paper's recipe is params, not code: train.loss rpgan, train.gamma with penalties [r1, r2], the cosine
schedules, Adam betas [0, beta2], ema_kimg and flip (the `r3gan` and `r3gan-tiny` presets in
stages/experiments.py set them). z has train.z_dim entries (the paper's 64).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from pipeline.families import FAMILIES, Family
from pipeline.models import generator_config
from pipeline.r3gan import R3Critic, R3Generator


class R3GAN(Family):
    name = "r3gan"

    def build(self) -> tuple[nn.Module, nn.Module]:
        p = self.params
        g = R3Generator(p.r3gan_preset, self.image_size, z_dim=p.z_dim)
        d = R3Critic(p.r3gan_preset, self.image_size)
        return g, d

    def generator_config(self) -> dict[str, Any]:
        p = self.params
        return generator_config(p.model, p.z_dim, 0, self.image_size, preset=p.r3gan_preset)


FAMILIES[R3GAN.name] = R3GAN
