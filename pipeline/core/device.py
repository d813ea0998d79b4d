"""Which device a stage runs on: the `device` setting (`auto`, `cpu`, `mps`, `cuda`, `cuda:N`), checked up front.

Usage:
    from pipeline.core.device import resolve_device, describe, sample_device
    device = resolve_device(params.device)            # torch.device; UserError (one line) when it cannot run
    device = resolve_device("auto", local_rank=1, world_size=2)   # under torchrun: cuda:LOCAL_RANK
    describe(device)                                   # "cuda:0 (Tesla T4, sm_75)", "mps", "cpu": for metrics JSON
    sample_device(device)                              # where float64 sampling runs: the CPU instead of MPS
    guard_batchnorm(model, device)                     # MPS: BatchNorm inputs made contiguous first

    machine = probe()                                  # what this torch sees: plain values
    choose_device("auto", machine)                     # the decision, testable with any Machine
    gpu_problem(machine.gpus[0], machine.arch_list, machine.torch_version, "kaggle")   # a one-line message or None

`auto` is CUDA, else Apple's MPS, else the CPU. A named device that is not there is a UserError. So is a CUDA GPU
this torch build has no kernels for (Kaggle's P100, sm_60, with a torch built for sm_75 and up): checked against
`torch.cuda.get_arch_list()` before any work, instead of "no kernel image is available" mid-run. On Colab or
Kaggle (pipeline.core.platform) `auto` with no GPU is a UserError too, saying how to switch the accelerator on:
training there on the CPU takes hours per epoch, so only `device: cpu` runs it. `animegan device` prints what the
setting resolves to.

MPS runs float32 only: the speed options' `cuda` mode is off there (no bf16, compile or channels_last), float64
sampling runs on the CPU (MPS has no float64), and BatchNorm inputs are made contiguous (torch has had wrong
BatchNorm gradients on MPS for non-contiguous inputs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from pipeline.core.errors import UserError
from pipeline.core.platform import ACCELERATOR, detect_platform

SETTING = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
_ARCH = re.compile(r"(sm|compute)_(\d+)([a-z]?)")
INSTEAD = ACCELERATOR  # what to pick instead of a GPU the build cannot run (or of no GPU), by notebook platform


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    capability: tuple[int, int]
    bf16_supported: bool | None  # torch.cuda.is_bf16_supported without emulation; None: this torch cannot say


@dataclass(frozen=True)
class Machine:
    """What this torch sees, as plain values: every decision below takes one, so tests pass any machine."""

    gpus: tuple[Gpu, ...] = ()
    mps: bool = False
    arch_list: tuple[str, ...] = ()
    torch_version: str = ""
    platform: str | None = None  # colab | kaggle | None


def probe() -> Machine:
    """This process's torch: CUDA devices (names, capabilities, native bf16), MPS, the build's arch list."""
    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            gpus.append(Gpu(i, torch.cuda.get_device_name(i), tuple(torch.cuda.get_device_capability(i)),
                            _bf16_supported(i)))  # fmt: skip
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    arch = tuple(torch.cuda.get_arch_list()) if gpus else ()
    return Machine(tuple(gpus), mps, arch, str(torch.__version__), detect_platform())


def _bf16_supported(index: int) -> bool | None:
    with torch.cuda.device(index):
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # torch before 2.3 has no including_emulation: its answer then counts emulation too
            return None


def check_setting(setting: str) -> str:
    if not isinstance(setting, str) or not SETTING.fullmatch(setting):
        raise UserError(f"device: expected auto, cpu, mps, cuda or cuda:N, got {setting!r}")
    return setting


def choose_device(setting: str, machine: Machine, local_rank: int = 0, world_size: int = 1) -> torch.device:
    """The device `setting` names on `machine`, or UserError naming why it cannot run there."""
    check_setting(setting)
    if setting == "auto":
        if not machine.gpus and machine.platform in INSTEAD:  # hours per epoch on a notebook's CPU: never silently
            raise UserError(f"device: auto found no GPU on {machine.platform.capitalize()}: "
                            f"{INSTEAD[machine.platform]} (then restart), or set device: cpu to run on the CPU "
                            "on purpose")  # fmt: skip
        setting = "cuda" if machine.gpus else "mps" if machine.mps else "cpu"
    if setting == "cpu":
        return torch.device("cpu")
    if setting == "mps":
        if not machine.mps:
            raise UserError("device: mps is not available here (it needs Apple silicon and a torch built with MPS)")
        if world_size > 1:
            raise UserError("device: mps runs one process; torchrun needs device cuda or cpu")
        return torch.device("mps")
    if not machine.gpus:
        raise UserError(f"device: {setting}, but this torch {machine.torch_version} sees no CUDA GPU "
                        "(set device: auto or cpu)")  # fmt: skip
    if ":" in setting:
        if world_size > 1:
            raise UserError(f"device: {setting} names one GPU; under torchrun each process takes GPU LOCAL_RANK: "
                            "set device: cuda")  # fmt: skip
        index = int(setting.split(":")[1])
    else:
        index = local_rank if world_size > 1 else 0
    if index >= len(machine.gpus):
        raise UserError(f"device: cuda:{index} does not exist; this machine has {len(machine.gpus)} CUDA GPU(s), "
                        f"cuda:0..cuda:{len(machine.gpus) - 1}")  # fmt: skip
    problem = gpu_problem(machine.gpus[index], machine.arch_list, machine.torch_version, machine.platform)
    if problem:
        raise UserError(problem)
    return torch.device("cuda", index)


def build_runs_on(capability: tuple[int, int], arch_list: tuple[str, ...] | list[str]) -> bool | None:
    """Whether a build with these arch entries has kernels for a GPU of this compute capability.

    sm_XY (a cubin) runs on X.Y and later minors of major X (sm_XYa only on X.Y); compute_XY (PTX) is compiled
    by the driver for X.Y and anything newer. None when the list says nothing about CUDA (empty, or ROCm's gfx)."""
    entries = [m for m in map(_ARCH.fullmatch, arch_list) if m]
    if not entries:
        return None
    major, minor = capability
    for kind, digits, suffix in (m.groups() for m in entries):
        arch = (int(digits[:-1]), int(digits[-1]))
        if kind == "compute" and arch <= (major, minor):
            return True
        if kind == "sm" and arch[0] == major and (arch[1] == minor if suffix == "a" else arch[1] <= minor):
            return True
    return False


def gpu_problem(
    gpu: Gpu, arch_list: tuple[str, ...] | list[str], torch_version: str, platform: str | None
) -> str | None:
    """One line when this torch build cannot run on `gpu` (no kernel image for its compute capability)."""
    if build_runs_on(gpu.capability, arch_list) is not False:
        return None
    major, minor = gpu.capability
    sm = f"sm_{major}{minor}"
    instead = INSTEAD.get(platform or "", f"install a torch build whose arch list has {sm}")
    return (
        f"GPU {gpu.index} ({gpu.name}) has compute capability {major}.{minor} ({sm}), but this torch "
        f"{torch_version} has kernels only for {' '.join(arch_list)}: {instead}, or set device: cpu"
    )


def bf16_native(capability: tuple[int, int], supported_without_emulation: bool | None) -> bool:
    """bfloat16 in hardware: compute capability 8.0 and up (Ampere), and torch agrees where it can say so. A T4
    (7.5) or a V100 (7.0) emulates it, slowly or not at all depending on the op."""
    return tuple(capability) >= (8, 0) and supported_without_emulation is not False


def device_bf16_native(device: torch.device, machine: Machine | None = None) -> bool:
    """bf16_native for a CUDA device of this machine; False for any other device."""
    device = torch.device(device)
    if device.type != "cuda":
        return False
    machine = machine or probe()
    gpu = machine.gpus[device.index or 0]
    return bf16_native(gpu.capability, gpu.bf16_supported)


def resolve_device(setting: str, local_rank: int = 0, world_size: int = 1) -> torch.device:
    """choose_device on this machine."""
    return choose_device(setting, probe(), local_rank, world_size)


def describe(device: torch.device | str, machine: Machine | None = None) -> str:
    """For metrics JSON: "cuda:0 (Tesla T4, sm_75)", "mps" or "cpu"."""
    device = torch.device(device)
    if device.type != "cuda":
        return device.type
    machine = machine or probe()
    gpu = machine.gpus[device.index or 0]
    return f"cuda:{gpu.index} ({gpu.name}, sm_{gpu.capability[0]}{gpu.capability[1]})"


def sample_device(device: torch.device | str) -> torch.device:
    """Where float64 work (pipeline sampling) runs: MPS has no float64, so the CPU there."""
    device = torch.device(device)
    return torch.device("cpu") if device.type == "mps" else device


def _contiguous_inputs(module: nn.Module, args: tuple) -> tuple:
    return tuple(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args)


def guard_batchnorm(model: nn.Module, device: torch.device | str) -> int:
    """On MPS, make every BatchNorm's input contiguous before it runs (a forward pre-hook; a module-level function,
    so the model still pickles and deep-copies). Returns how many layers were guarded; elsewhere nothing is done."""
    if torch.device(device).type != "mps":
        return 0
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for layer in layers:
        layer.register_forward_pre_hook(_contiguous_inputs)
    return len(layers)


def status(setting: str, machine: Machine) -> tuple[str, str | None]:
    """What `animegan device` prints: the device the setting resolves to (with every GPU seen), and the problem
    that stops it, if any."""
    lines = [f"torch {machine.torch_version}; CUDA arch list: {' '.join(machine.arch_list) or 'none'}"]
    for gpu in machine.gpus:
        native = "native bf16" if bf16_native(gpu.capability, gpu.bf16_supported) else "no native bf16: float32"
        lines.append(f"cuda:{gpu.index}: {gpu.name}, compute capability {gpu.capability[0]}.{gpu.capability[1]}, "
                     f"{native}")  # fmt: skip
    if machine.mps:
        lines.append("mps: available (float32; no bf16, compile or channels_last)")
    try:
        device = choose_device(setting, machine)
    except UserError as e:
        return "\n".join(lines), str(e)
    lines.append(f"device: {setting} -> {describe(device, machine)}")
    return "\n".join(lines), None
