"""The device setting and the GPU checks, decided from plain inputs (a Machine, a capability, an arch list).

No GPU and no Mac here: the machines below are described, not probed (their arch lists are what torch 2.10+cu128,
Kaggle's, and torch 2.14 report); only the CPU rows and guard_batchnorm run real tensors.
"""

from __future__ import annotations

import copy
import importlib
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from pipeline.core.config import load_params
from pipeline.core.device import (
    Gpu,
    Machine,
    bf16_native,
    build_runs_on,
    choose_device,
    describe,
    gpu_problem,
    guard_batchnorm,
    probe,
    resolve_device,
    sample_device,
    status,
)
from pipeline.core.errors import UserError
from pipeline.core.platform import detect_platform

CU128 = ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120")  # current PyPI/Kaggle wheels
T4 = Gpu(0, "Tesla T4", (7, 5), False)
P100 = Gpu(0, "Tesla P100-PCIE-16GB", (6, 0), False)
A100 = Gpu(0, "NVIDIA A100-SXM4-40GB", (8, 0), True)
CPU_ONLY = Machine(torch_version="2.14.1")
MAC = Machine(mps=True, torch_version="2.14.1")


def cuda(*gpus: Gpu, platform: str | None = None) -> Machine:
    return Machine(gpus=tuple(gpus), arch_list=CU128, torch_version="2.10.0+cu128", platform=platform)


@pytest.mark.parametrize(
    ("machine", "want"),
    [(CPU_ONLY, "cpu"), (MAC, "mps"), (cuda(T4), "cuda:0"), (Machine(gpus=(T4,), mps=True, arch_list=CU128), "cuda:0")],
)
def test_auto_prefers_cuda_then_mps_then_cpu(machine, want):
    assert str(choose_device("auto", machine)) == want


def test_named_devices():
    two = cuda(T4, Gpu(1, "Tesla T4", (7, 5), False))
    assert choose_device("cuda:1", two) == torch.device("cuda", 1)
    assert choose_device("cuda", two) == torch.device("cuda", 0)
    assert choose_device("cpu", two) == torch.device("cpu")
    assert choose_device("auto", two, local_rank=1, world_size=2) == torch.device("cuda", 1)  # torchrun


@pytest.mark.parametrize(
    ("setting", "machine", "words"),
    [
        ("cuda", CPU_ONLY, "sees no CUDA GPU"),
        ("cuda:1", cuda(T4), "cuda:1 does not exist"),
        ("mps", CPU_ONLY, "mps is not available"),
        ("mps", Machine(mps=True), None),
        ("gpu", CPU_ONLY, "expected auto, cpu, mps, cuda or cuda:N"),
        ("cuda:x", cuda(T4), "expected auto"),
    ],
)
def test_unavailable_device_is_one_line(setting, machine, words):
    if words is None:
        assert choose_device(setting, machine).type == "mps"
        return
    with pytest.raises(UserError, match=words) as e:
        choose_device(setting, machine)
    assert "\n" not in str(e.value)


def test_mps_and_a_named_gpu_refuse_torchrun():
    with pytest.raises(UserError, match="torchrun"):
        choose_device("mps", MAC, local_rank=0, world_size=2)
    with pytest.raises(UserError, match="LOCAL_RANK"):
        choose_device("cuda:0", cuda(T4), local_rank=0, world_size=2)


@pytest.mark.parametrize(
    ("capability", "arch", "runs"),
    [
        ((6, 0), CU128, False),  # Kaggle's P100 with a current torch
        ((7, 5), CU128, True),  # T4
        ((8, 9), CU128, True),  # L4: sm_86 runs on 8.9 (same major, lower minor)
        ((9, 0), ("sm_80", "sm_90a"), True),
        ((9, 1), ("sm_80", "sm_90a"), False),  # an arch-specific cubin runs on its own minor only
        ((12, 1), ("sm_90", "compute_90"), True),  # PTX: the driver compiles it for newer GPUs
        ((7, 0), ("sm_80", "compute_80"), False),  # but never for older ones
        ((6, 0), ("sm_50", "sm_60", "sm_70"), True),  # an older build that still has sm_60
        ((6, 0), (), None),  # the build says nothing (CPU build): no verdict
        ((6, 0), ("gfx90a", "gfx942"), None),  # ROCm
    ],
)
def test_build_runs_on(capability, arch, runs):
    assert build_runs_on(capability, arch) is runs


def test_p100_problem_names_gpu_capability_arch_list_and_what_to_pick():
    message = gpu_problem(P100, CU128, "2.10.0+cu128", "kaggle")
    assert message is not None and "\n" not in message
    for words in ("Tesla P100-PCIE-16GB", "compute capability 6.0", "sm_75 sm_80", "2.10.0+cu128", "T4", "cpu"):
        assert words in message
    assert "Colab" in gpu_problem(P100, CU128, "2.10", "colab") and "T4" in gpu_problem(P100, CU128, "2.10", "colab")
    assert "sm_60" in gpu_problem(P100, CU128, "2.10", None)
    assert gpu_problem(T4, CU128, "2.10", "kaggle") is None
    with pytest.raises(UserError, match="P100.*T4 x2"):  # auto does not fall back to hours on the CPU
        choose_device("auto", cuda(P100, platform="kaggle"))


@pytest.mark.parametrize(
    ("capability", "torch_says", "native"),
    [((7, 5), False, False), ((7, 5), None, False), ((7, 0), True, False), ((8, 0), True, True),
     ((8, 6), None, True), ((9, 0), True, True), ((8, 0), False, False)],
)  # fmt: skip
def test_bf16_only_where_the_gpu_has_it(capability, torch_says, native):
    assert bf16_native(capability, torch_says) is native


def test_platform_detection():
    assert detect_platform({"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}, False) == "kaggle"
    assert detect_platform({}, True) == "kaggle"
    assert detect_platform({"COLAB_RELEASE_TAG": "release-colab"}, False) == "colab"
    assert detect_platform({}, False) is None


@pytest.mark.parametrize(
    ("platform", "hint"),
    [("colab", "on Colab pick Runtime > Change runtime type > T4 GPU"),
     ("kaggle", "on Kaggle pick Settings > Accelerator > GPU T4 x2")],
)  # fmt: skip
def test_auto_without_a_gpu_on_a_notebook_platform_stops_saying_how_to_switch_it_on(platform, hint):
    no_gpu = Machine(torch_version="2.14.1", platform=platform)
    with pytest.raises(UserError) as e:
        choose_device("auto", no_gpu)
    assert hint in str(e.value) and "set device: cpu" in str(e.value) and "\n" not in str(e.value)
    assert choose_device("cpu", no_gpu) == torch.device("cpu")  # the CPU on purpose
    assert choose_device("auto", cuda(T4, platform=platform)) == torch.device("cuda", 0)
    assert choose_device("auto", CPU_ONLY) == torch.device("cpu")  # off the platforms: the CPU, as before
    text, problem = status("auto", no_gpu)
    assert problem == str(e.value) and "device: auto ->" not in text


def test_describe_and_status():
    t4 = cuda(T4)
    assert describe("cuda:0", t4) == "cuda:0 (Tesla T4, sm_75)"
    assert describe("cpu") == "cpu" and describe("mps", MAC) == "mps"
    text, problem = status("auto", t4)
    assert problem is None and "device: auto -> cuda:0 (Tesla T4, sm_75)" in text and "no native bf16" in text
    text, problem = status("auto", cuda(P100, platform="kaggle"))
    assert "compute capability 6.0" in text and "T4" in problem


def test_this_machine_runs_on_the_cpu():  # conftest hides any GPU; no Mac here
    machine = probe()
    assert machine.gpus == () and machine.torch_version == str(torch.__version__)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_sample_device_keeps_float64_off_mps():
    assert sample_device("mps") == torch.device("cpu")
    assert sample_device("cuda:1") == torch.device("cuda", 1) and sample_device("cpu") == torch.device("cpu")


def test_guard_batchnorm_makes_inputs_contiguous():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.BatchNorm2d(4))
    assert guard_batchnorm(model, "cpu") == 0  # nothing to do off MPS
    guarded = copy.deepcopy(model)
    # The hooks need no MPS to run: install them as MPS would (the device is only the switch).
    assert guard_batchnorm(guarded, "mps") == 2
    pickle.loads(pickle.dumps(guarded))  # still saves: the hook is a module-level function
    seen = []
    guarded[1].register_forward_pre_hook(lambda m, args: seen.append(args[0].is_contiguous()))
    x = torch.randn(2, 4, 5, 5).permute(0, 1, 3, 2)  # non-contiguous
    out = nn.Sequential(*list(guarded)[1:])(x)
    assert seen == [True]
    torch.testing.assert_close(out, nn.Sequential(*list(model)[1:])(x))  # same values, only the layout changed


PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def animegan(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stages.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_device_command_prints_what_auto_resolves_to_and_exits_2_on_a_problem(tmp_path):
    done = animegan("device", "--params", str(PARAMS), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "device: auto -> cpu" in done.stdout and f"torch {torch.__version__}" in done.stdout
    bad = animegan("device", "--params", str(PARAMS), "--set", "device=mps", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: device: mps is not available here (it needs Apple silicon and a torch built with MPS)"
    ]


def test_a_bad_device_setting_names_the_key():
    with pytest.raises(UserError, match="device: String should match pattern"):
        load_params(PARAMS, ["device=gpu"])
    assert load_params(PARAMS, ["device=cuda:1"]).device == "cuda:1"


@pytest.mark.parametrize("stage", ["train", "sample", "detector", "fid_reference", "evaluate"])
def test_every_stage_refuses_an_unavailable_device_before_any_work(tmp_path, monkeypatch, stage):
    """tmp_path holds no clean faces, generator or samples: the device is checked before any of them is read."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as e:
        importlib.import_module(f"stages.{stage}").execute(load_params(PARAMS, ["device=cuda"]))
    want = f"device: cuda, but this torch {torch.__version__} sees no CUDA GPU (set device: auto or cpu)"
    assert str(e.value) == want
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize(("variable", "hint"), [("COLAB_RELEASE_TAG", "Runtime > Change runtime type > T4 GPU"),
                                                ("KAGGLE_KERNEL_RUN_TYPE", "Settings > Accelerator > GPU T4 x2")])
def test_device_command_on_a_notebook_platform_without_a_gpu_exits_2(tmp_path, monkeypatch, variable, hint):
    """The platform is told by its environment variable, set here as Colab or Kaggle set it; this machine has no GPU
    (conftest hides any)."""
    monkeypatch.setenv(variable, "release-colab" if variable.startswith("COLAB") else "Interactive")
    done = animegan("device", "--params", str(PARAMS), cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: device: auto found no GPU on ")
    assert hint in lines[0] and "set device: cpu" in lines[0]
    on_purpose = animegan("device", "--params", str(PARAMS), "--set", "device=cpu", cwd=tmp_path)
    assert on_purpose.returncode == 0 and "device: cpu -> cpu" in on_purpose.stdout


@pytest.mark.parametrize("stage", ["train", "sample", "detector", "fid_reference", "evaluate"])
def test_every_stage_on_kaggle_without_a_gpu_stops_before_any_work(tmp_path, monkeypatch, stage):
    """KAGGLE_KERNEL_RUN_TYPE is set here as Kaggle sets it: device auto, no GPU, nothing read or written."""
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="on Kaggle pick Settings > Accelerator > GPU T4 x2"):
        importlib.import_module(f"stages.{stage}").execute(load_params(PARAMS, ["device=auto"]))
    assert list(tmp_path.iterdir()) == []
