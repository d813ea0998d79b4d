"""What decides whether a resumed run can be bit-identical: the machine and software a checkpoint was written on.

Usage:
    from pipeline.train.fingerprint import fingerprint, fingerprint_differences
    fp = fingerprint(torch.device("cpu"), world_size=1, deterministic=False)
    # {"torch": "2.14.1", "device": "cpu", "device_name": "AMD EPYC 7B13", "world_size": 1, "deterministic": False,
    #  "cpu_threads": 2}
    fingerprint_differences(state["fingerprint"], fp)   # ["cpu_threads: 1 -> 2"]; [] when equal

Checkpoints hold every RNG state and the position in the epoch, so a resumed run draws what an uninterrupted one
would; whether the arithmetic then gives the same bits depends on the kernels: the torch version, the device (a
CPU's or GPU model's kernels differ), the world size (how gradients are summed), the deterministic flags, and on
CPU the number of intra-op threads (float sums are split differently between threads). Equal fingerprints: the
continued run ends bit-identical to an uninterrupted one on CPU. Different: it continues, with a warning.
"""

from __future__ import annotations

import platform
from typing import Any

import torch


def fingerprint(device: torch.device, world_size: int, deterministic: bool) -> dict[str, Any]:
    on_cuda = device.type == "cuda"
    return {
        "torch": str(torch.__version__),
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if on_cuda else cpu_name(),
        "world_size": int(world_size),
        "deterministic": bool(deterministic),
        # GPU kernels do not split their sums by the host's thread count
        "cpu_threads": None if on_cuda else int(torch.get_num_threads()),
    }


def cpu_name() -> str:
    """The CPU model (its vector units pick the kernels), e.g. 'Intel(R) Xeon(R) ...'; the architecture where the
    model cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def fingerprint_differences(saved: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """'key: saved -> current' for each entry that differs; a checkpoint without a fingerprint differs as a whole."""
    if not saved:
        return ["the checkpoint records no fingerprint (written before fingerprints were kept)"]
    keys = sorted(set(saved) | set(current))
    return [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k)]
