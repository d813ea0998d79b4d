"""The course's DCGAN family (pipeline.models): its networks, with every loss and regulariser of pipeline.families.

Usage:
    from pipeline.families import family_for
    family = family_for(params.train, image_size=64)   # train.model: dcgan
    g, d = family.build()
"""

from __future__ import annotations

from typing import Any

from torch import nn

from pipeline.families import FAMILIES, Family
from pipeline.models import Critic, Generator, generator_config


class DCGAN(Family):
    name = "dcgan"

    def build(self) -> tuple[nn.Module, nn.Module]:
        p = self.params
        g = Generator(p.z_dim, p.g_features, self.image_size)
        d = Critic(p.d_features, self.image_size, p.critic_norm, sigmoid=False, spectral_norm=p.spectral_norm)
        return g, d

    def generator_config(self) -> dict[str, Any]:
        p = self.params
        return generator_config(p.model, p.z_dim, p.g_features, self.image_size)


FAMILIES[DCGAN.name] = DCGAN
