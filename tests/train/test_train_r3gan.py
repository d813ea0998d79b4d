"""The R3GAN family through the whole train stage: r3gan-tiny at 16 px trains, resumes bit for bit across a lazy
R1/R2 step and a moving schedule, runs under 2 gloo DDP ranks, and samples through the sample stage; the course's
DCGAN trains with the same rpgan + R1 + EMA ramp-up."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_loop import Interrupt, InterruptAt, same_run_state
from train_helpers import SUBPROCESS_ENV, checkpoint_of, tiny_params, train_tiny, write_faces

from pipeline.train.generator_file import load_generator
from stages import sample as sample_stage
from stages import train as train_stage
from stages.experiments import preset_settings, yaml_text

WORKER = Path(__file__).with_name("ddp_worker.py")
# 8 images a step: the schedules run over the first 6 steps; R1/R2 on critic steps 0, 3, 6, ...
SHORT_SCHEDULE = ["train.schedule_kimg=0.048", "train.reg_every=3", "train.ema_kimg=0.1"]


def r3gan_tiny(*overrides: str) -> list[str]:
    """The r3gan-tiny preset as overrides (the test's tiny sizes and steps from train_helpers.TINY stay)."""
    keep = {"train.epochs", "train.batch_size", "train.on_mismatch", "train.seed"}
    preset = [f"{k}={yaml_text(v)}" for k, v in preset_settings("r3gan-tiny").items() if k not in keep]
    return [*preset, *SHORT_SCHEDULE, *overrides]


def test_r3gan_tiny_trains_with_finite_losses_and_logs_its_schedules(tmp_path, faces):
    logged: dict[int, dict] = {}

    class Curves:
        def metrics(self, step, values):
            logged[step] = values

        def grid(self, name, images):
            pass

    summary = train_tiny(tmp_path, faces, *r3gan_tiny("train.max_steps=4"), make_log=lambda start: Curves())
    assert summary["steps"] == 4 and np.isfinite(summary["loss_d"]) and np.isfinite(summary["loss_g"])
    g = load_generator(tmp_path / "models" / "generator.pt")
    assert type(g).__name__ == "R3Generator" and g(torch.randn(2, 64)).shape == (2, 3, 16, 16)
    assert set(logged) == {1, 2, 3, 4}
    assert {"loss_d", "loss_g", "lr_g", "lr_d", "gamma", "beta2", "r1", "r2"} <= set(logged[1])  # step 0: R1/R2
    assert "r1" not in logged[2] and "r1" in logged[4]  # lazy: critic steps 0 and 3 only
    assert logged[1]["gamma"] == 1.0 and logged[4]["gamma"] < logged[3]["gamma"] < logged[1]["gamma"]
    assert logged[1]["lr_g"] == 2.0e-4 and logged[4]["lr_g"] < 2.0e-4
    state = checkpoint_of(tmp_path)
    assert state["opt_d"]["param_groups"][0]["betas"][0] == 0.0  # Adam beta1 0, as the paper


def test_r3gan_tiny_resumes_bit_identically_across_a_lazy_step_and_the_schedule(tmp_path, faces):
    common = r3gan_tiny("train.max_steps=0", "train.epochs=1", "train.n_critic=1")  # 64 faces / 8: 8 steps
    train_tiny(tmp_path / "straight", faces, *common)
    with pytest.raises(Interrupt):  # dies after step 5, before its checkpoint: checkpoint 4 (every 2) stays
        train_tiny(tmp_path / "resumed", faces, *common, make_log=lambda start: InterruptAt(5))
    assert checkpoint_of(tmp_path / "resumed")["step"] == 4
    summary = train_tiny(tmp_path / "resumed", faces, *common)  # resumes at step 4: critic step 6 is lazy R1/R2
    assert summary["resumed_from_step"] == 4 and summary["steps"] == 8
    same_run_state(checkpoint_of(tmp_path / "straight"), checkpoint_of(tmp_path / "resumed"))
    a, b = (torch.load(tmp_path / r / "models" / "generator.pt", weights_only=True) for r in ("straight", "resumed"))
    assert a["config"] == b["config"] == {"model": "r3gan", "preset": "tiny", "z_dim": 64, "image_size": 16}
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


def test_dcgan_trains_with_rpgan_r1_and_ema_ramp_up(tmp_path, faces):
    summary = train_tiny(
        tmp_path, faces, "train.loss=rpgan", "train.gamma=1.0", "train.penalties=[r1]", "train.ema_kimg=0.1",
        "train.flip=true", "train.dcgan.critic_norm=none", "train.max_steps=3",
    )  # fmt: skip
    assert summary["steps"] == 3 and np.isfinite(summary["loss_d"]) and np.isfinite(summary["loss_g"])
    state = checkpoint_of(tmp_path)
    assert not all(torch.equal(state["G"][k], state["G_ema"][k]) for k in state["G"])


def test_r3gan_tiny_under_two_gloo_ranks_stays_in_sync(tmp_path, faces):
    variant = r3gan_tiny("train.max_steps=4")
    params = tiny_params(tmp_path, *variant)
    write_faces(params, faces)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER),
           str(tmp_path), *variant]  # fmt: skip
    done = subprocess.run(cmd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not [p for p in (tmp_path / "rank1").rglob("*") if p.is_file()]
    summary = json.loads((Path(params.paths.metrics) / "train.json").read_text())
    assert summary["steps"] == 4 and summary["world_size"] == 2
    logs = [(tmp_path / f"rank{r}.log").read_text() for r in (0, 1)]
    assert all("step 4: rank" in text and "equal on all 2 ranks" in text for text in logs)


def test_r3gan_tiny_samples_through_the_sample_stage(tmp_path, faces):
    params = tiny_params(tmp_path, *r3gan_tiny("train.max_steps=2"), "sample.count=6", "sample.batch_size=4")
    write_faces(params, faces)
    train_stage.execute(params)
    sample_stage.execute(params)
    files = sorted(Path(params.paths.samples).iterdir())
    assert [p.name for p in files] == [f"{i}.jpg" for i in range(1, 7)]
    assert Path(params.paths.submission).is_file()
