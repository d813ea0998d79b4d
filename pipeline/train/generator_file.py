"""generator.pt, the file every stage after train loads: write it, read it back, know its architecture.

Usage:
    from pipeline.train.generator_file import generator_config, save_generator, load_generator
    config = generator_config("dcgan", z_dim=100, g_features=64, image_size=64)   # DCGANConfig; or family.config
    save_generator(Path("models/generator.pt"), g, config)
    g = load_generator(Path("models/generator.pt"))            # eval mode; g.z_dim; g(z) -> (N, 3, H, W) in [-1, 1]

The file is a plain dict {"config": {...}, "state_dict": {...}} that `torch.load(path, weights_only=True)` reads.
`config` is the family's Config (pipeline.train.families) as a plain dict with the family's name first:
{"model": "dcgan", "z_dim": 100, "g_features": 64, "image_size": 64} or {"model": "r3gan", "preset": "paper",
"z_dim": 64, "image_size": 64}; loading rebuilds the generator from FAMILIES[model].Config(**the rest). These are
the dicts earlier versions wrote, key for key, so their files load as they are.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.core.atomic import atomic_path, torch_bytes
from pipeline.core.errors import UserError, one_line
from pipeline.train.families import FAMILIES, family_class


def generator_config(model: str, *args: Any, **kwargs: Any) -> Any:
    """The Config of the family named model, from its fields (positional in the Config's order, or by name)."""
    return family_class(model).Config(*args, **kwargs)


def stored_config(config: Any) -> dict[str, Any]:
    """What generator.pt holds for a family's Config: {"model": the family's name, **its fields}."""
    names = [name for name, family in FAMILIES.items() if type(config) is family.Config]
    if not names:
        raise TypeError(f"{type(config).__name__} is no registered family's Config")
    return {"model": names[0], **dataclasses.asdict(config)}


def build_generator(stored: dict[str, Any]) -> nn.Module:
    """The generator a stored config describes (see stored_config), freshly initialised; it has .z_dim."""
    model = stored.get("model")
    if model not in FAMILIES:
        raise UserError(f"unknown generator model {model!r}; this version knows {tuple(FAMILIES)}")
    family = FAMILIES[model]
    fields = {f.name for f in dataclasses.fields(family.Config)}
    given = set(stored) - {"model"}
    if given != fields:
        missing, unknown = sorted(fields - given), sorted(given - fields)
        raise UserError(f"generator config of {model} lacks {missing} / has unknown {unknown}: not a {model} "
                        f"generator this version can rebuild (retrain it)")  # fmt: skip
    return family.generator(family.Config(**{k: stored[k] for k in given}))


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module behind DDP and torch.compile wrappers."""
    while True:
        if hasattr(module, "module") and isinstance(module.module, nn.Module):  # DistributedDataParallel
            module = module.module
        elif hasattr(module, "_orig_mod"):  # torch.compile
            module = module._orig_mod
        else:
            return module


def save_generator(path: Path, generator: nn.Module, config: Any) -> None:
    """Write {"config", "state_dict"} atomically; config is the family's Config. Tensors are copied to CPU so the
    file loads anywhere."""
    state = {k: v.detach().to("cpu", copy=True) for k, v in unwrap(generator).state_dict().items()}
    payload = {"config": stored_config(config), "state_dict": state}
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
    if not isinstance(payload["config"], dict):
        raise UserError(f"{path}: not a generator file (its config is not a mapping)")
    try:
        generator = build_generator(payload["config"])
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    try:
        generator.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        raise UserError(f"{path}: weights do not match its config ({one_line(e, 200)})") from None
    return generator.to(map_location).eval()
