"""pipeline.core.speed decides where bf16, compile, channels_last and fused Adam apply; params accept the old booleans.

torch.device("cuda") is only a name here (no GPU is touched), so the CUDA side of the decision is real, not mocked.
"""

import contextlib
import logging
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.core import speed as speed_module
from pipeline.core.config import load_params, validate
from pipeline.core.speed import SpeedSettings, applies, resolve_speed

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


@pytest.mark.parametrize(
    ("mode", "on_cpu", "on_cuda"),
    [("cuda", False, True), ("always", True, True), ("never", False, False)],
)
def test_each_mode_applies_where_it_says(mode, on_cpu, on_cuda):
    assert applies(mode, "cpu") is on_cpu
    assert applies(mode, torch.device("cuda", 1)) is on_cuda


def test_repo_defaults_keep_every_option_off_on_cpu_and_compile_off_everywhere():
    train = load_params(PARAMS).train
    assert resolve_speed(train, "cpu") == SpeedSettings("cpu")
    on_gpu = resolve_speed(train, "cuda:0", bf16_native=True)
    assert (on_gpu.bf16, on_gpu.compile, on_gpu.channels_last, on_gpu.fused_adam) == (True, False, True, True)


def test_bf16_cuda_mode_needs_native_bf16_and_says_once(caplog):
    """A T4 (compute capability 7.5): `cuda` means float32 there, logged once; `always` still forces bf16. The
    capability -> native decision itself is tested in tests/core/test_device.py."""
    caplog.set_level(logging.INFO, logger="pipeline.core.speed")
    speed_module._said.clear()
    for section in ("train", "eval"):
        params = getattr(load_params(PARAMS, [f"{section}.bf16=cuda"]), section)
        t4 = resolve_speed(params, "cuda:0", bf16_native=False)
        assert t4.bf16 is False and t4.channels_last is True
        assert resolve_speed(params, "cuda:0", bf16_native=True).bf16 is True
        assert resolve_speed(params, "cpu", bf16_native=False).bf16 is False
    assert [r.message for r in caplog.records].count(speed_module.NO_NATIVE_BF16) == 1
    forced = load_params(PARAMS, ["train.bf16=always"]).train
    assert resolve_speed(forced, "cuda:0", bf16_native=False).bf16 is True


def test_always_turns_an_option_on_for_cpu_and_the_settings_act_on_it():
    overrides = ["train.bf16=always", "train.channels_last=always", "train.compile=never", "train.fused_adam=never"]
    speed = resolve_speed(load_params(PARAMS, overrides).train, "cpu")
    assert speed.as_dict() == {"bf16": True, "compile": False, "channels_last": True, "fused_adam": False}
    with speed.autocast():
        out = torch.nn.Conv2d(3, 4, 3)(torch.randn(1, 3, 8, 8))
    assert out.dtype == torch.bfloat16
    assert speed.memory_format == torch.channels_last
    module = torch.nn.Linear(2, 2)
    assert speed.compiled(module) is module
    assert isinstance(SpeedSettings("cpu").autocast(), contextlib.nullcontext)


def test_a_section_without_an_option_leaves_it_off():
    class ForwardOnly:  # e.g. an evaluation section: no optimizer, so no fused_adam
        bf16 = "always"

    assert resolve_speed(ForwardOnly(), "cpu") == SpeedSettings("cpu", bf16=True)


@pytest.mark.parametrize(("old", "new"), [(True, "cuda"), (False, "never")])
def test_old_params_files_with_booleans_still_load(tmp_path, old, new):
    raw = yaml.safe_load(PARAMS.read_text())
    for key in ("bf16", "compile", "channels_last", "fused_adam"):
        raw["train"][key] = old
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    train = load_params(path).train
    assert (train.bf16, train.compile, train.channels_last, train.fused_adam) == (new,) * 4
    assert load_params(PARAMS, [f"train.compile={str(old).lower()}"]).train.compile == new  # --set, as text
    assert validate(raw).train.bf16 == new
