"""generator.pt, the file every stage after train loads: write it, read it back, know its architecture.

Usage:
    from pipeline.train.generator_file import generator_config, save_generator, load_generator
    save_generator(Path("models/generator.pt"), g, generator_config("dcgan", z_dim=100, g_features=64, image_size=64))
    g = load_generator(Path("models/generator.pt"))            # eval mode; g.z_dim; g(z) -> (N, 3, H, W) in [-1, 1]

The file is a plain dict {"config": {...}, "state_dict": {...}} that `torch.load(path, weights_only=True)` reads;
`config` holds `model` (a family of pipeline.train.families) and that family's `file_keys`: the DCGAN's
Generator arguments, or R3GAN's preset, z_dim and image_size:
    generator_config("r3gan", z_dim=64, g_features=0, image_size=64, preset="paper")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.core.atomic import atomic_path, torch_bytes
from pipeline.core.errors import UserError, one_line
from pipeline.train.families import FAMILIES

MODELS = tuple(FAMILIES)


def generator_config(model: str, z_dim: int, g_features: int, image_size: int, preset: str = "") -> dict[str, Any]:
    """The architecture dict stored in generator.pt (plain types only); r3gan keeps preset instead of g_features."""
    if model not in MODELS:
        raise UserError(f"train.model: expected one of {MODELS}, got {model!r}")
    return FAMILIES[model].file_config(z_dim, g_features, image_size, preset)


def build_generator(config: dict[str, Any]) -> nn.Module:
    """The generator a config from generator_config describes, freshly initialised; it has .z_dim."""
    family = FAMILIES.get(config.get("model"), FAMILIES["dcgan"])  # an unknown model is named below
    missing = [k for k in family.file_keys if k not in config]
    if missing:
        raise UserError(f"generator config lacks {missing}")
    if config["model"] not in MODELS:
        raise UserError(f"unknown generator model {config['model']!r}; this version knows {MODELS}")
    return FAMILIES[config["model"]].generator_from_config(config)


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
