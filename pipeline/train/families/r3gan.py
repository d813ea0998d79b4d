"""The R3GAN family (Huang, Gokaslan, Kuleshov, Tompkin, NeurIPS 2024), written for this project: its generator
and critic, and their adapter to the shared training loop and objectives.

Usage:
    from pipeline.train.families.r3gan import R3Generator, R3Critic, PRESETS
    g = R3Generator("paper", image_size=64)          # z (N, 64) -> images (N, 3, 64, 64), linear output
    d = R3Critic("paper", image_size=64)             # images (N, 3, 64, 64) -> logits (N,)
    g = R3Generator("tiny", image_size=32, z_dim=64) # presets: paper, small, tiny (see PRESETS)

The architecture is the paper's modernised baseline ("R3GAN"): stages of ResNeXt-style residual blocks
(1x1 expand -> grouped 3x3 -> 1x1 project, leaky ReLU 0.2 with a learned per-channel bias before each
activation), no normalisation layers, no output nonlinearity, x2 resampling with a fixed low-pass filter, a learned
4x4 basis modulated by a linear map of z at the start of G and a depthwise 4x4 "basis" + linear head at the end of D.
Between stages a 1x1 convolution changes the width (G: before upsampling, D: after downsampling).

Initialisation (the paper's fix-up style rule, keeping a fresh network's signal variance without normalisation):
every convolution/linear weight is N(0, gain^2 / fan_in); the last 1x1 of each residual branch is zero, so a fresh
block is the identity; the two other layers of a branch use gain = leaky-ReLU gain * L ** (-1 / (2m - 2)), with L the
number of residual blocks in that network and m = 3 layers per branch; everything else uses gain 1.

Resampling: the [1, 2, 1] filter convolved with the x2 hold box [1, 1] gives the 4-tap [1, 3, 3, 1] / 8 (the
official code's CreateLowpassKernel with Inplace=False); its outer product filters every channel separately. Up:
zero-insertion then this filter (times 4), which is bilinear x2 upsampling; down: this filter, then every other
pixel. Borders are zero-padded, as in the official code, so a constant image is kept exactly except on the border.

Image sizes 16, 32 and 64: a preset lists G's stages for 64 px (4, 8, 16, 32, 64); a smaller image drops the first
(coarsest) stages, keeping the last log2(size) - 1 (32 px: 4 stages from 4x4, 16 px: 3), as the course's DCGAN
drops its first upsamplings. The basis then starts the first stage kept. D mirrors G: reversed widths, same counts.

Output range: G's output is linear (no tanh, as in the paper); trained on data in [-1, 1] it lands there roughly,
and the sample stage clamps to [-1, 1] before it makes pixels. A fresh G outputs values with std about 0.5.
The `paper` preset is the official FFHQ-64 configuration (brownvc/R3GAN train.py, preset FFHQ-64); its parameter
counts equal the official networks' (tests/train/test_r3gan_model.py). The official code runs G's last four and D's
first four stages in bf16; here precision is the training loop's choice (autocast), not the network's.

The paper's recipe is params, not code: train.loss rpgan, train.gamma with penalties [r1, r2], the cosine
schedules, Adam betas [0, beta2], ema_kimg and flip (the `r3gan` and `r3gan-tiny` presets in
stages/experiments.py set them). z has train.z_dim entries (the paper's 64). The adapter:
    family = family_for(params.train, image_size=64)   # train.model: r3gan, train.r3gan.preset: paper|small|tiny
    g, d = family.build()
Its params are train.r3gan (R3GANParams: the preset); generator.pt stores R3GANConfig (preset, z_dim, image_size),
which shapes both networks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.core.config import Section
from pipeline.core.errors import UserError
from pipeline.train.families.base import FAMILIES, Family

SIZES = (16, 32, 64)
LEAKY_SLOPE = 0.2
LEAKY_GAIN = math.sqrt(2 / (1 + LEAKY_SLOPE**2))  # keeps the second moment through leaky ReLU 0.2
BRANCH_LAYERS = 3  # m in the fix-up rule: 1x1, grouped 3x3, 1x1
LOWPASS_TAPS = (1, 2, 1)


@dataclass(frozen=True)
class Preset:
    """Widths and cardinalities of G's stages from 4x4 up to 64x64; D uses both lists reversed.

    Every preset keeps the paper's 16 channels per group in its 3x3 convolutions (the paper's 64 px stage has 32).
    """

    widths: tuple[int, ...]
    cardinalities: tuple[int, ...]  # groups of each stage's 3x3 convolution
    blocks: int  # residual blocks per stage
    expansion: int  # a block's inner width = expansion * stage width
    purpose: str


PRESETS: dict[str, Preset] = {
    "paper": Preset(
        widths=tuple(3 * w // 4 for w in (1024, 1024, 1024, 1024, 512)),
        cardinalities=tuple(3 * c for c in (32, 32, 32, 32, 16)),
        blocks=2,
        expansion=2,
        purpose="the official FFHQ-64 configuration (brownvc/R3GAN train.py --preset=FFHQ-64), for a GPU",
    ),
    "small": Preset(
        widths=(384, 384, 384, 384, 192),
        cardinalities=(48, 48, 48, 48, 24),
        blocks=2,
        expansion=2,
        purpose="half the paper's width (about a quarter of its parameters and FLOPs), for a small GPU",
    ),
    "tiny": Preset(
        widths=(128, 128, 128, 64, 32),
        cardinalities=(16, 16, 16, 8, 4),
        blocks=1,
        expansion=2,
        purpose="one block per stage, about the course DCGAN's forward FLOPs; for CPU tests and CPU runs at 16-32 px",
    ),
}


def preset_stages(preset: str, image_size: int) -> tuple[Preset, int]:
    """The preset and how many of its stages an image of image_size uses (64: 5, 32: 4, 16: 3)."""
    if preset not in PRESETS:
        raise UserError(f"r3gan preset: expected one of {tuple(PRESETS)}, got {preset!r}")
    if image_size not in SIZES:
        raise UserError(f"r3gan supports image sizes {SIZES}, got {image_size} (set data.image_size)")
    return PRESETS[preset], image_size.bit_length() - 2


def lowpass_kernel(taps: tuple[int, ...] = LOWPASS_TAPS) -> torch.Tensor:
    """2-D x2 resampling filter: taps convolved with the hold box [1, 1], outer product, summing to 1."""
    padded = (0, *taps, 0)
    line = torch.tensor([float(a + b) for a, b in zip(padded[:-1], padded[1:], strict=True)])  # (1,2,1) -> (1,3,3,1)
    kernel = torch.outer(line, line)
    return kernel / kernel.sum()


def _scaled_normal_(weight: torch.Tensor, gain: float) -> torch.Tensor:
    """He-style init: N(0, gain^2 / fan_in); fan_in counts only the inputs one output sees (groups included)."""
    fan_in = weight[0].numel()
    with torch.no_grad():
        return weight.normal_(0.0, gain / math.sqrt(fan_in))


def _conv(c_in: int, c_out: int, kernel: int, gain: float, groups: int = 1) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, groups=groups, bias=False)
    _scaled_normal_(conv.weight, gain)
    return conv


class BiasedLeakyReLU(nn.Module):
    """leaky_relu(x + b, 0.2) with a learned per-channel bias b (zero at init); the network's only biases."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1), LEAKY_SLOPE)


class ResidualBlock(nn.Module):
    """x + project(act(mix(act(expand(x))))): 1x1 -> grouped 3x3 -> 1x1; project is zero at init."""

    def __init__(self, channels: int, cardinality: int, expansion: int, blocks_in_network: int) -> None:
        super().__init__()
        inner = channels * expansion
        if inner % cardinality:
            raise UserError(f"r3gan: {inner} inner channels do not split into {cardinality} groups")
        gain = LEAKY_GAIN * blocks_in_network ** (-1 / (2 * BRANCH_LAYERS - 2))
        self.expand = _conv(channels, inner, 1, gain)
        self.act1 = BiasedLeakyReLU(inner)
        self.mix = _conv(inner, inner, 3, gain, groups=cardinality)
        self.act2 = BiasedLeakyReLU(inner)
        self.project = _conv(inner, channels, 1, gain=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(self.act2(self.mix(self.act1(self.expand(x)))))


class Upsample2x(nn.Module):
    """Bilinear-like x2 upsampling: zero insertion, then the low-pass filter (x4 to keep the mean), per channel."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("kernel", lowpass_kernel() * 4, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        weight = self.kernel.to(x.dtype).expand(c, 1, *self.kernel.shape)
        return F.conv_transpose2d(x, weight, stride=2, padding=1, groups=c)


class Downsample2x(nn.Module):
    """x2 downsampling: the low-pass filter per channel, then every other pixel."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("kernel", lowpass_kernel(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        weight = self.kernel.to(x.dtype).expand(c, 1, *self.kernel.shape)
        return F.conv2d(x, weight, stride=2, padding=1, groups=c)


class GenerativeBasis(nn.Module):
    """z -> (N, C, 4, 4): a learned 4x4 basis per channel, scaled by a linear map of z."""

    def __init__(self, z_dim: int, channels: int) -> None:
        super().__init__()
        self.basis = nn.Parameter(torch.randn(channels, 4, 4))
        self.linear = nn.Linear(z_dim, channels, bias=False)
        _scaled_normal_(self.linear.weight, 1.0)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.basis.unsqueeze(0) * self.linear(z).view(z.shape[0], -1, 1, 1)


class CriticHead(nn.Module):
    """(N, C, 4, 4) -> (N,): a depthwise 4x4 convolution to (N, C, 1, 1), then a linear map to one logit."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.basis = nn.Conv2d(channels, channels, 4, groups=channels, bias=False)
        self.linear = nn.Linear(channels, 1, bias=False)
        _scaled_normal_(self.basis.weight, 1.0)
        _scaled_normal_(self.linear.weight, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.basis(x).flatten(1)).view(-1)


def _blocks(preset: Preset, width: int, cardinality: int, total: int) -> list[nn.Module]:
    return [ResidualBlock(width, cardinality, preset.expansion, total) for _ in range(preset.blocks)]


class R3Generator(nn.Module):
    """z (N, z_dim) -> images (N, 3, image_size, image_size), linear output trained toward [-1, 1]."""

    def __init__(self, preset: str, image_size: int, z_dim: int = 64) -> None:
        super().__init__()
        spec, n = preset_stages(preset, image_size)
        widths, cards = spec.widths[-n:], spec.cardinalities[-n:]
        total = n * spec.blocks
        self.preset, self.image_size, self.z_dim = preset, image_size, z_dim
        stages = [nn.Sequential(GenerativeBasis(z_dim, widths[0]), *_blocks(spec, widths[0], cards[0], total))]
        for i in range(1, n):
            width_change = [] if widths[i - 1] == widths[i] else [_conv(widths[i - 1], widths[i], 1, 1.0)]
            stages.append(nn.Sequential(*width_change, Upsample2x(), *_blocks(spec, widths[i], cards[i], total)))
        self.stages = nn.Sequential(*stages)
        self.to_rgb = _conv(widths[-1], 3, 1, 1.0)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.to_rgb(self.stages(z))


class R3Critic(nn.Module):
    """images (N, 3, image_size, image_size) -> one logit per image (N,)."""

    def __init__(self, preset: str, image_size: int) -> None:
        super().__init__()
        spec, n = preset_stages(preset, image_size)
        widths, cards = spec.widths[::-1][:n], spec.cardinalities[::-1][:n]
        total = n * spec.blocks
        self.preset, self.image_size = preset, image_size
        self.from_rgb = _conv(3, widths[0], 1, 1.0)
        stages = []
        for i in range(n - 1):
            width_change = [] if widths[i] == widths[i + 1] else [_conv(widths[i], widths[i + 1], 1, 1.0)]
            stages.append(nn.Sequential(*_blocks(spec, widths[i], cards[i], total), Downsample2x(), *width_change))
        stages.append(nn.Sequential(*_blocks(spec, widths[-1], cards[-1], total), CriticHead(widths[-1])))
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.from_rgb(x))


class R3GANParams(Section):
    """train.r3gan in params.yaml."""

    preset: Literal["paper", "small", "tiny"]


@dataclass(frozen=True)
class R3GANConfig:
    """What generator.pt stores: R3Generator's arguments."""

    preset: str
    z_dim: int
    image_size: int


class R3GAN(Family):
    name = "r3gan"
    Params = R3GANParams
    Config = R3GANConfig

    def make_config(self) -> R3GANConfig:
        return R3GANConfig(preset=self.section.preset, z_dim=self.params.z_dim, image_size=self.image_size)

    def build(self) -> tuple[nn.Module, nn.Module]:
        g = self.generator(self.config)
        d = R3Critic(self.config.preset, self.image_size)
        return g, d

    @classmethod
    def generator(cls, config: R3GANConfig) -> nn.Module:
        return R3Generator(preset=config.preset, image_size=config.image_size, z_dim=config.z_dim)


FAMILIES[R3GAN.name] = R3GAN
