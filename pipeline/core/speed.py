"""Where the speed options apply: bf16 autocast, torch.compile, channels_last and fused Adam, decided in one place.

Usage:
    from pipeline.core.speed import resolve_speed
    speed = resolve_speed(params.train, device)   # any params section with some of these four fields
    model = speed.compiled(model)                 # torch.compile, or the module itself
    model.to(memory_format=speed.memory_format)
    with speed.autocast():
        out = model(x)
    torch.optim.Adam(model.parameters(), fused=speed.fused_adam or None)

Each option is a SpeedMode (pipeline/core/config.py): `cuda` (on for CUDA devices only, where it pays), `always` (on
CPU too: slower there, but it runs the code a GPU run would take, so a test or a CPU user can exercise it), or
`never`. A section without one of the fields leaves that option off, so evaluation can take only the options that
mean something for a forward pass.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

OPTIONS = ("bf16", "compile", "channels_last", "fused_adam")


def applies(mode: str, device: torch.device | str) -> bool:
    """Whether an option set to `mode` is on for `device`."""
    if mode not in ("cuda", "always", "never"):
        raise ValueError(f"speed mode must be cuda, always or never, got {mode!r}")
    return mode == "always" or (mode == "cuda" and torch.device(device).type == "cuda")


@dataclass(frozen=True)
class SpeedSettings:
    """The options resolved for one device: plain booleans, what the code asks instead of device checks."""

    device_type: str
    bf16: bool = False
    compile: bool = False
    channels_last: bool = False
    fused_adam: bool = False

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self) -> contextlib.AbstractContextManager:
        """A fresh context each call: bf16 autocast on this device type, or nothing."""
        if self.bf16:
            return torch.autocast(self.device_type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def compiled(self, module: nn.Module) -> nn.Module:
        return torch.compile(module) if self.compile else module

    def as_dict(self) -> dict[str, Any]:
        """For provenance (metrics JSON): which options were on."""
        return {name: getattr(self, name) for name in OPTIONS}


def resolve_speed(params: Any, device: torch.device | str) -> SpeedSettings:
    """Turn a params section's speed modes into on/off for `device`; a field the section lacks is off."""
    device = torch.device(device)
    on = {name: applies(getattr(params, name), device) for name in OPTIONS if hasattr(params, name)}
    return SpeedSettings(device_type=device.type, **on)
