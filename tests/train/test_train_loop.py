"""pipeline.train.loop and the train stage on tiny real runs: variants, seeds, resume, refusal, divergence, no-op."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import assert_same_tensors, checkpoint_of, tiny_params, train_tiny, write_faces

from pipeline.core.errors import UserError
from pipeline.train.generator_file import load_generator
from stages import train as train_stage

STATE_KEYS = ("G", "D", "G_ema", "opt_g", "opt_d", "step", "epoch", "step_in_epoch", "signature", "rng")


def same_run_state(a: dict, b: dict) -> None:
    for key in STATE_KEYS:
        assert_same_tensors(a[key], b[key], key)


@pytest.mark.parametrize(
    "variant",
    [
        ["train.loss=gan"],
        ["train.loss=wgan", "train.optimizer=rmsprop"],
        ["train.loss=wgan-gp", "train.dcgan.critic_norm=instance", "train.n_critic=2"],
        ["train.loss=hinge", "train.dcgan.spectral_norm=true", "train.ema=0"],
        ["train.loss=gan", "train.reuse_fake=false", "train.n_critic=2", "data.image_size=32"],
    ],
    ids=["gan", "wgan", "wgan-gp", "hinge-sn", "gan-fresh-fake-32px"],
)
def test_each_variant_trains_with_finite_losses(tmp_path, faces, variant):
    size = 32 if "data.image_size=32" in variant else 16
    if size == 32:
        faces = np.repeat(np.repeat(faces, 2, axis=1), 2, axis=2)
    summary = train_tiny(tmp_path, faces, "train.max_steps=3", *variant)
    assert summary["steps"] == 3
    assert np.isfinite(summary["loss_d"]) and np.isfinite(summary["loss_g"])
    g = load_generator(tmp_path / "models" / "generator.pt")
    assert g(torch.randn(2, g.z_dim)).shape == (2, 3, size, size)
    if "train.loss=wgan" in variant:  # clipping holds after every critic step
        weights = [v for k, v in checkpoint_of(tmp_path)["D"].items() if k.endswith(("weight", "bias"))]
        assert max(w.abs().max().item() for w in weights) <= 0.01 + 1e-7


def test_same_seed_same_weights_other_seed_other_weights(tmp_path, faces):
    train_tiny(tmp_path / "a", faces)
    train_tiny(tmp_path / "b", faces)
    train_tiny(tmp_path / "c", faces, "train.seed=7")
    same_run_state(checkpoint_of(tmp_path / "a"), checkpoint_of(tmp_path / "b"))
    weight = "l3.0.weight"
    assert not torch.equal(checkpoint_of(tmp_path / "a")["G"][weight], checkpoint_of(tmp_path / "c")["G"][weight])
    ga, gb = (load_generator(tmp_path / r / "models" / "generator.pt").state_dict() for r in "ab")
    assert_same_tensors(ga, gb)


class Interrupt(Exception):
    pass


class InterruptAt:
    """A TrainLog that stops the run when it is told about `step` (after that step's update, before its save)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def metrics(self, step, values):
        if step == self.step:
            raise Interrupt

    def grid(self, name, images):
        pass


def test_interrupted_and_resumed_equals_uninterrupted_bit_for_bit(tmp_path, faces):
    # 3 critic steps per step exercise the permutation position; 64 faces / 8 / 3: 2 steps an epoch, 6 in all
    common = ["train.max_steps=0", "train.epochs=3", "train.n_critic=3"]
    train_tiny(tmp_path / "straight", faces, *common)
    with pytest.raises(Interrupt):  # dies after step 3: step 3's progress is lost, checkpoint 2 stays
        train_tiny(tmp_path / "resumed", faces, *common, make_log=lambda start: InterruptAt(3))
    assert checkpoint_of(tmp_path / "resumed")["step"] == 2
    summary = train_tiny(tmp_path / "resumed", faces, *common)
    assert summary["resumed_from_step"] == 2 and summary["steps"] == 6
    same_run_state(checkpoint_of(tmp_path / "straight"), checkpoint_of(tmp_path / "resumed"))


def test_a_longer_run_continues_a_finished_shorter_one_exactly(tmp_path, faces):
    train_tiny(tmp_path / "long", faces, "train.max_steps=4")
    train_tiny(tmp_path / "grown", faces, "train.max_steps=2")
    train_tiny(tmp_path / "grown", faces, "train.max_steps=4")
    same_run_state(checkpoint_of(tmp_path / "long"), checkpoint_of(tmp_path / "grown"))


def test_checkpoint_from_other_params_is_refused_in_one_line_or_restarted(tmp_path, faces):
    train_tiny(tmp_path, faces, "train.max_steps=2")
    before = (tmp_path / "models" / "checkpoint.pt").read_bytes()
    with pytest.raises(UserError) as err:
        train_tiny(tmp_path, faces, "train.max_steps=2", "train.lr_d=0.0002", "train.loss=hinge")
    message = str(err.value)
    assert "\n" not in message
    assert "train.lr_d: 0.0001 -> 0.0002" in message and "train.loss: 'gan' -> 'hinge'" in message
    assert "delete it" in message and "train.on_mismatch=restart" in message
    assert (tmp_path / "models" / "checkpoint.pt").read_bytes() == before
    with pytest.raises(UserError, match="faces.sha256"):  # other data is other params too
        train_tiny(tmp_path, faces[::-1].copy(), "train.max_steps=2")

    train_tiny(tmp_path, faces, "train.max_steps=2", "train.loss=hinge", "train.on_mismatch=restart")
    train_tiny(tmp_path / "fresh", faces, "train.max_steps=2", "train.loss=hinge")
    same_run_state(checkpoint_of(tmp_path), checkpoint_of(tmp_path / "fresh"))


def test_divergence_stops_with_user_error_and_keeps_last_good_checkpoint(tmp_path, faces):
    # lr_g 1e30 blows G up at step 1; the critic's loss is NaN at step 2, before its checkpoint is written
    with pytest.raises(UserError, match=r"training diverged: loss_d is nan by step 2; .*checkpoint.pt keeps"):
        train_tiny(tmp_path, faces, "train.lr_g=1.0e+30", "train.checkpoint_every=1", "train.max_steps=8")
    kept = checkpoint_of(tmp_path)
    assert kept["step"] == 1
    assert all(torch.isfinite(t).all() for t in kept["G"].values() if t.is_floating_point())
    assert not (tmp_path / "models" / "generator.pt").exists()


def test_stage_writes_outputs_and_a_finished_rerun_rewrites_nothing(tmp_path, faces, monkeypatch):
    params = tiny_params(tmp_path, "train.max_steps=0", "train.epochs=2", "train.log_every=2")
    write_faces(params, faces)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    monkeypatch.chdir(tmp_path)  # inside a git repo that is no DVC repo, as a fresh clone before `dvc init`
    train_stage.execute(params)
    assert not (tmp_path / ".dvc").exists()  # DVCLive alone would have run `dvc init` here
    metrics = load_json(Path(params.paths.metrics) / "train.json")
    assert metrics["steps"] == 16 and metrics["images_seen"] == 16 * 8 and metrics["epochs"] == 2
    assert {"images_per_s", "loss_d", "loss_g", "wall_s", "device", "torch"} <= set(metrics)
    plots = Path(params.paths.plots) / "train"
    assert sorted(p.name for p in (plots / "grids").iterdir()) == ["epoch_001.png", "epoch_002.png", "final.png"]
    curve = (plots / "live" / "plots" / "metrics" / "loss_d.tsv").read_text().splitlines()
    assert curve[0].split("\t") == ["step", "loss_d"] and [r.split("\t")[0] for r in curve[1:]] == [
        str(s) for s in range(2, 17, 2)
    ]

    def files():
        found = (p for p in tmp_path.rglob("*") if p.is_file() and ".git" not in p.parts)
        return sorted(p for p in found if p.name not in ("params.yaml", ".train.lock"))  # the lock: no output

    outputs = files()
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in outputs}
    train_stage.execute(params)
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in outputs} == before
    assert files() == outputs

    (Path(params.paths.models) / "generator.pt").unlink()  # as `dvc repro` does to outputs: rebuilt, not retrained
    train_stage.execute(params)
    assert load_generator(Path(params.paths.models) / "generator.pt")


def test_stage_refuses_faces_of_another_size(tmp_path, faces):
    params = tiny_params(tmp_path, "data.image_size=32")
    write_faces(params, faces)
    with pytest.raises(UserError, match="rerun the clean stage"):
        train_stage.execute(params)


def load_json(path: Path) -> dict:
    import json

    return json.loads(path.read_text())
