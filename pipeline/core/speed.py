"""Where the speed options apply: bf16 autocast, torch.compile, channels_last and fused Adam, decided in one place.

Usage:
    from pipeline.core.speed import resolve_speed
    speed = resolve_speed(params.train, device)   # any params section with some of these four fields
    model = speed.compiled(model)                 # torch.compile, or the module itself
    model.to(memory_format=speed.memory_format)
    with speed.autocast():
        out = model(x)
    torch.optim.Adam(model.parameters(), fused=speed.fused_adam or None)

Each option is a SpeedMode (pipeline/core/config.py): `cuda` (on for CUDA devices only, where it pays; bf16 only on
GPUs with native bfloat16, compute capability 8.0 and up), `always` (on
CPU too: slower there, but it runs the code a GPU run would take, so a test or a CPU user can exercise it), or
`never`. A section without one of the fields leaves that option off, so evaluation can take only the options that
mean something for a forward pass.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pipeline.core.device import device_bf16_native

log = logging.getLogger(__name__)

OPTIONS = ("bf16", "compile", "channels_last", "fused_adam")
NO_NATIVE_BF16 = ("bf16 autocast off: this GPU has no native bfloat16 (that needs compute capability 8.0, such as "
                  "an A100 or L4; a T4 is 7.5), so it runs float32 (bf16: always would emulate it)")  # fmt: skip
_said: set[str] = set()  # messages already logged by this process


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


def resolve_speed(params: Any, device: torch.device | str, bf16_native: bool | None = None) -> SpeedSettings:
    """Turn a params section's speed modes into on/off for `device`; a field the section lacks is off.

    bf16's `cuda` mode also needs bfloat16 in the GPU's hardware (`bf16_native`; None: ask pipeline.core.device):
    a T4 (compute capability 7.5) would emulate it, so there it means float32, said once in the log."""
    device = torch.device(device)
    on = {name: applies(getattr(params, name), device) for name in OPTIONS if hasattr(params, name)}
    if on.get("bf16") and params.bf16 == "cuda":
        on["bf16"] = device_bf16_native(device) if bf16_native is None else bf16_native
        if not on["bf16"] and NO_NATIVE_BF16 not in _said:
            _said.add(NO_NATIVE_BF16)
            log.info(NO_NATIVE_BF16)
    return SpeedSettings(device_type=device.type, **on)
