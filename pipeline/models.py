"""The course's DCGAN generator and critic, at 16/32/64 px, and the generator file every later stage loads.

Usage:
    from pipeline.models import Generator, Critic, save_generator, load_generator
    g = Generator(z_dim=100, g_features=64, image_size=64)     # the course's G exactly at 64 px
    d = Critic(d_features=64, image_size=64, norm="batch", sigmoid=True)  # the course's D exactly
    save_generator(Path("models/generator.pt"), g, generator_config(...))
    g = load_generator(Path("models/generator.pt"))            # eval mode; g.z_dim; g(z) -> (N, 3, H, W) in [-1, 1]

The generator file is a plain dict {"config": {...}, "state_dict": {...}} that `torch.load(path,
weights_only=True)` reads; `config` holds exactly the keyword arguments of Generator plus `model`.
Module names (l1, l2, l3) are the course notebook's, so its G_*.pth state dicts load into Generator.
Smaller images drop the course's first up/down-sampling blocks: 64 px has 4 upsamplings from 4x4, 32 px 3, 16 px 2.
A config with model "r3gan" holds R3Generator's arguments instead (preset, z_dim, image_size; pipeline/r3gan.py):
    generator_config("r3gan", z_dim=64, g_features=0, image_size=64, preset="paper")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.atomic import atomic_path, torch_bytes
from pipeline.errors import UserError, one_line
from pipeline.r3gan import PRESETS, R3Generator

MODELS = ("dcgan", "r3gan")
SIZES = (16, 32, 64)
FILE_KEYS = ("model", "z_dim", "g_features", "image_size")
R3GAN_FILE_KEYS = ("model", "preset", "z_dim", "image_size")


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
        raise UserError(f"train.critic_norm: expected batch, instance or none, got {norm!r}")
    return nn.Sequential(sn(nn.Conv2d(c_in, c_out, 4, 2, 1)), norm_layer, nn.LeakyReLU(0.2))


def generator_config(model: str, z_dim: int, g_features: int, image_size: int, preset: str = "") -> dict[str, Any]:
    """The architecture dict stored in generator.pt (plain types only); r3gan keeps preset instead of g_features."""
    if model not in MODELS:
        raise UserError(f"train.model: expected one of {MODELS}, got {model!r}")
    if model == "r3gan":
        if preset not in PRESETS:
            raise UserError(f"r3gan preset: expected one of {tuple(PRESETS)}, got {preset!r}")
        return {"model": model, "preset": str(preset), "z_dim": int(z_dim), "image_size": int(image_size)}
    return {"model": model, "z_dim": int(z_dim), "g_features": int(g_features), "image_size": int(image_size)}


def build_generator(config: dict[str, Any]) -> nn.Module:
    """The generator a config from generator_config describes, freshly initialised; it has .z_dim."""
    missing = [k for k in (R3GAN_FILE_KEYS if config.get("model") == "r3gan" else FILE_KEYS) if k not in config]
    if missing:
        raise UserError(f"generator config lacks {missing}")
    if config["model"] not in MODELS:
        raise UserError(f"unknown generator model {config['model']!r}; this version knows {MODELS}")
    if config["model"] == "r3gan":
        return R3Generator(preset=config["preset"], image_size=config["image_size"], z_dim=config["z_dim"])
    return Generator(z_dim=config["z_dim"], g_features=config["g_features"], image_size=config["image_size"])


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module behind DDP and torch.compile wrappers."""
    while True:
        if hasattr(module, "module") and isinstance(module.module, nn.Module):  # DistributedDataParallel
            module = module.module
        elif hasattr(module, "_orig_mod"):  # torch.compile
            module = module._orig_mod
        else:
            return module


def save_generator(path: Path, generator: nn.Module, config: dict[str, Any]) -> None:
    """Write {"config", "state_dict"} atomically; tensors are copied to CPU so the file loads anywhere."""
    state = {k: v.detach().to("cpu", copy=True) for k, v in unwrap(generator).state_dict().items()}
    payload = {"config": dict(config), "state_dict": state}
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(torch_bytes(payload))


def load_generator(path: Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the generator saved by save_generator, in eval mode, on map_location."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"generator file not found: {path} (run the train stage first)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise UserError(f"{path}: not a generator file ({one_line(e, 200)})") from None
    if not isinstance(payload, dict) or "config" not in payload or "state_dict" not in payload:
        raise UserError(f"{path}: not a generator file (expected keys 'config' and 'state_dict')")
    generator = build_generator(payload["config"])
    try:
        generator.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        raise UserError(f"{path}: weights do not match its config ({one_line(e, 200)})") from None
    return generator.to(map_location).eval()
