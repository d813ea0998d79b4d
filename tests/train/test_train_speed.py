"""The speed options a GPU run takes (train.bf16, channels_last, fused_adam, compile), run on CPU with `always`.

Each trains a few steps with finite losses and leaves evidence that its path ran. bf16 autocast, channels_last and
fused Adam are deterministic on CPU, so 2 steps + resume + 2 steps equals 4 steps bit for bit with each on.
The gradient penalty stays float32 under bf16 (DESIGN.md: penalties eager in fp32).
"""


import shutil
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import assert_same_tensors, checkpoint_of, train_tiny

from pipeline.train.families.dcgan import Critic
from pipeline.train.losses import gradient_penalty

STATE_KEYS = ("G", "D", "G_ema", "opt_g", "opt_d", "step", "rng")

# torch.compile on CPU has inductor build C++ (g++, Python's headers): a minimal Debian has neither, and there
# compiling cannot run at all (InductorError "No working C++ compiler"), so these tests skip with the fix named.
NEEDS_CXX = pytest.mark.skipif(
    shutil.which("g++") is None or not Path(sysconfig.get_paths()["include"], "Python.h").is_file(),
    reason="torch.compile on CPU needs a C++ compiler and Python's headers: apt-get install g++ python3-dev",
)


def conv_weights(state: dict) -> list[torch.Tensor]:
    return [t for t in state.values() if t.ndim == 4]


@pytest.fixture(scope="module")
def plain(module_tmp) -> dict:
    """The default run on CPU: every option set to `cuda` (or `never`), so none is on."""
    from train_helpers import tiny_faces

    root = module_tmp("plain")
    train_tiny(root, tiny_faces())
    return checkpoint_of(root)


def test_by_default_no_option_is_on_for_cpu(plain):
    assert not any(plain["summary"]["speed"].values())
    assert not plain["opt_g"]["param_groups"][0]["fused"]
    assert all(w.is_contiguous() for w in conv_weights(plain["G"]) + conv_weights(plain["D"]))


@pytest.mark.parametrize("option", ["bf16", "channels_last", "fused_adam"])
def test_option_runs_on_cpu_and_resumes_bit_for_bit(tmp_path, faces, plain, option):
    on = f"train.{option}=always"
    summary = train_tiny(tmp_path / "straight", faces, on)
    assert summary["steps"] == 4 and np.isfinite(summary["loss_d"]) and np.isfinite(summary["loss_g"])
    assert summary["speed"] == {o: o == option for o in ("bf16", "compile", "channels_last", "fused_adam")}
    train_tiny(tmp_path / "resumed", faces, on, "train.max_steps=2")
    assert train_tiny(tmp_path / "resumed", faces, on)["resumed_from_step"] == 2
    straight, resumed = checkpoint_of(tmp_path / "straight"), checkpoint_of(tmp_path / "resumed")
    for key in STATE_KEYS:
        assert_same_tensors(straight[key], resumed[key], key)

    # evidence that the option's path ran, not the default one
    if option == "bf16":  # bf16 rounding moves every weight away from the fp32 run's
        assert not torch.equal(straight["G"]["l3.0.weight"], plain["G"]["l3.0.weight"])
    elif option == "channels_last":
        weights = conv_weights(straight["G"]) + conv_weights(straight["D"]) + conv_weights(straight["G_ema"])
        assert all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in weights)
    else:
        assert straight["opt_g"]["param_groups"][0]["fused"] and straight["opt_d"]["param_groups"][0]["fused"]


def test_gradient_penalty_stays_float32_inside_bf16_autocast():
    torch.manual_seed(0)
    critic = Critic(8, 16, "instance", sigmoid=False, spectral_norm=False)
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    fake = (torch.rand(4, 3, 16, 16) * 2 - 1).bfloat16()  # what a bf16 generator hands over
    fp32 = gradient_penalty(critic, real, fake.float(), torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        in_bf16_region = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(1))
    assert in_bf16_region.dtype == torch.float32 and torch.isfinite(fp32)
    assert torch.equal(in_bf16_region, fp32)


class CountGraphs:
    """A TrainLog that records torch._dynamo's graph count after each step and, from step 1 on, makes any
    recompilation an error (torch._dynamo.config.error_on_recompile)."""

    def __init__(self) -> None:
        self.graphs: dict[int, int] = {}

    def metrics(self, step, values):
        from torch._dynamo.utils import counters

        self.graphs[step] = counters["stats"]["unique_graphs"]
        torch._dynamo.config.error_on_recompile = True

    def grid(self, name, images):
        pass


@NEEDS_CXX
@pytest.mark.slow  # compiling 4 graphs with inductor's C++ backend: about 20 s warm, 2 minutes cold on 2 cores
def test_compile_with_every_option_on_cpu_compiles_nothing_after_the_first_step(tmp_path, faces):
    # the GPU path with train.compile on: bf16, channels_last and fused Adam too. wgan-gp with 2 critic steps: the
    # generator runs without and with grad (2 graphs), the critic trains and is frozen for G's step (2 graphs),
    # and the penalty differentiates twice on the plain module beside the compiled one
    on = [f"train.{o}=always" for o in ("compile", "bf16", "channels_last", "fused_adam")]
    on += ["train.loss=wgan-gp", "train.dcgan.critic_norm=instance", "train.n_critic=2", "train.max_steps=3"]
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    log = CountGraphs()
    try:
        summary = train_tiny(tmp_path / "straight", faces, *on, make_log=lambda start: log)
    finally:
        torch._dynamo.config.error_on_recompile = False
    assert np.isfinite(summary["loss_d"]) and np.isfinite(summary["loss_g"])
    assert all(summary["speed"].values())
    assert log.graphs == {1: 4, 2: 4, 3: 4}
    assert counters["graph_break"] == {}

    # resumed in this process, the same compiled kernels run: bit for bit
    train_tiny(tmp_path / "resumed", faces, *on, "train.max_steps=2")
    train_tiny(tmp_path / "resumed", faces, *on)
    straight, resumed = checkpoint_of(tmp_path / "straight"), checkpoint_of(tmp_path / "resumed")
    for key in STATE_KEYS:
        assert_same_tensors(straight[key], resumed[key], key)
