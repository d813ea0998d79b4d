"""The course's DCGAN family: its generator and critic at 16/32/64 px, and their adapter to the training loop.

Usage:
    from pipeline.train.families.dcgan import Generator, Critic
    g = Generator(z_dim=100, g_features=64, image_size=64)     # the course's G exactly at 64 px
    d = Critic(d_features=64, image_size=64, norm="batch", sigmoid=True)  # the course's D exactly
    family = family_for(params.train, image_size=64)           # train.model: dcgan (pipeline.train.families)
    g, d = family.build()                                      # the loop's critic: logits, no sigmoid

Module names (l1, l2, l3) are the course notebook's, so its G_*.pth state dicts load into Generator.
Smaller images drop the course's first up/down-sampling blocks: 64 px has 4 upsamplings from 4x4, 32 px 3, 16 px 2.
Every loss and regulariser of pipeline.train.families applies. Its params are train.dcgan (DCGANParams: the widths,
the critic's normalisation); generator.pt stores DCGANConfig, the generator's arguments (z_dim, g_features,
image_size): later stages build no critic, so the critic's settings stay in the checkpoint's signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from pipeline.core.config import PositiveInt, Section
from pipeline.core.errors import UserError
from pipeline.train.families.base import FAMILIES, Family

SIZES = (16, 32, 64)


def _stages(image_size: int) -> int:
    """Number of x2 resolution steps between 4x4 and image_size."""
    if image_size not in SIZES:
        raise UserError(f"dcgan supports image sizes {SIZES}, got {image_size} (set data.image_size)")
    return image_size.bit_length() - 3  # 16 -> 2, 32 -> 3, 64 -> 4


def init_weights(m: nn.Module) -> None:
    """The course's weights_init: conv N(0, 0.02); BatchNorm weight N(1, 0.02), bias 0 (Linear keeps torch's)."""
    name = m.__class__.__name__
    if "Conv" in name:
        m.weight.data.normal_(0.0, 0.02)
    elif "BatchNorm" in name:
        m.weight.data.normal_(1.0, 0.02)
        m.bias.data.fill_(0)


class Generator(nn.Module):
    """z (N, z_dim) -> image (N, 3, image_size, image_size) in [-1, 1]."""

    def __init__(self, z_dim: int, g_features: int, image_size: int) -> None:
        super().__init__()
        self.z_dim = z_dim
        ups = _stages(image_size)
        top = g_features * 2 ** (ups - 1)  # 64 px: 8 * g_features, the course's 512
        self.top = top
        self.l1 = nn.Sequential(nn.Linear(z_dim, top * 4 * 4, bias=False), nn.BatchNorm1d(top * 4 * 4), nn.ReLU())
        self.l2 = nn.Sequential(*[_dconv_bn_relu(top >> i, top >> (i + 1)) for i in range(ups - 1)])
        self.l3 = nn.Sequential(
            nn.ConvTranspose2d(g_features, 3, kernel_size=5, stride=2, padding=2, output_padding=1, bias=False),
            nn.Tanh(),
        )
        self.apply(init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = self.l1(z).view(z.size(0), self.top, 4, 4)
        return self.l3(self.l2(y))


def _dconv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, kernel_size=5, stride=2, padding=2, output_padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(True),
    )


class Critic(nn.Module):
    """image (N, 3, S, S) -> one score per image (N,).

    norm: "batch" (the course's D), "instance" (WGAN-GP: the penalty needs per-sample gradients), "none".
    sigmoid: True is the course's D outputting probabilities; the training loop uses False and folds the
    sigmoid into its loss (BCE-with-logits: same value, numerically stable, safe under autocast).
    spectral_norm: wrap every convolution in torch's spectral normalisation.
    """

    def __init__(
        self, d_features: int, image_size: int, norm: str = "batch", sigmoid: bool = False, spectral_norm: bool = False
    ) -> None:
        super().__init__()
        downs = _stages(image_size)
        sn = nn.utils.spectral_norm if spectral_norm else (lambda m: m)
        layers: list[nn.Module] = [sn(nn.Conv2d(3, d_features, 4, 2, 1)), nn.LeakyReLU(0.2)]
        c = d_features
        for _ in range(downs - 1):
            layers.append(_conv_norm_lrelu(c, c * 2, norm, sn))
            c *= 2
        layers.append(sn(nn.Conv2d(c, 1, kernel_size=4, stride=1, padding=0)))
        if sigmoid:
            layers.append(nn.Sigmoid())
        self.l1 = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l1(x).view(-1)


def _conv_norm_lrelu(c_in: int, c_out: int, norm: str, sn: Any) -> nn.Sequential:
    if norm == "batch":
        norm_layer: nn.Module = nn.BatchNorm2d(c_out)
    elif norm == "instance":
        norm_layer = nn.InstanceNorm2d(c_out)  # the course's suggestion for WGAN-GP (affine=False)
    elif norm == "none":
        norm_layer = nn.Identity()
    else:
        raise UserError(f"train.dcgan.critic_norm: expected batch, instance or none, got {norm!r}")
    return nn.Sequential(sn(nn.Conv2d(c_in, c_out, 4, 2, 1)), norm_layer, nn.LeakyReLU(0.2))


class DCGANParams(Section):
    """train.dcgan in params.yaml."""

    g_features: PositiveInt
    d_features: PositiveInt
    critic_norm: Literal["batch", "instance", "none"]
    spectral_norm: bool


@dataclass(frozen=True)
class DCGANConfig:
    """What generator.pt stores: Generator's arguments."""

    z_dim: int
    g_features: int
    image_size: int


class DCGAN(Family):
    name = "dcgan"
    Params = DCGANParams
    Config = DCGANConfig

    def make_config(self) -> DCGANConfig:
        return DCGANConfig(z_dim=self.params.z_dim, g_features=self.section.g_features, image_size=self.image_size)

    def build(self) -> tuple[nn.Module, nn.Module]:
        p = self.section
        g = self.generator(self.config)
        d = Critic(p.d_features, self.image_size, p.critic_norm, sigmoid=False, spectral_norm=p.spectral_norm)
        return g, d

    @classmethod
    def generator(cls, config: DCGANConfig) -> nn.Module:
        return Generator(z_dim=config.z_dim, g_features=config.g_features, image_size=config.image_size)


FAMILIES[DCGAN.name] = DCGAN
