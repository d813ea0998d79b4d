"""The training set-ups that bench.models.race races and bench.models.cost prices: params overrides per name.

Usage:
    from bench.models.setups import SETUPS, setup_overrides
    overrides = setup_overrides("wgan-gp", size=32, images=1920)   # --set style "key=value" strings for load_params
"""

from __future__ import annotations

SETUPS: dict[str, list[str]] = {
    "dcgan": ["train.loss=gan", "train.dcgan.critic_norm=batch"],  # the course's sample code
    "wgan-gp": ["train.loss=wgan-gp", "train.dcgan.critic_norm=instance", "train.n_critic=2"],  # the course's preset
    # the course's networks with R3GAN's objective: critic without BatchNorm (R1 needs per-sample gradients)
    "dcgan-rpgan-r1": ["train.loss=rpgan", "train.dcgan.critic_norm=none", "train.gamma=1.0", "train.penalties=[r1]",
                       "train.reg_every=4", "train.ema_kimg=10.0"],  # fmt: skip
    "r3gan-tiny": [],  # stages/experiments.py's preset, with its schedules over the race's images
}


def setup_overrides(name: str, size: int, images: int) -> list[str]:
    """The overrides of set-up `name` at `size` px, with schedules (r3gan-tiny's) spread over `images` real images."""
    from stages.experiments import preset_settings, yaml_text

    common = [f"data.image_size={size}", "train.batch_size=64", "train.log_every=1000", "train.epochs=1000"]
    if name == "r3gan-tiny":
        skip = {"train.epochs", "train.seed", "train.on_mismatch"}
        preset = [f"{k}={yaml_text(v)}" for k, v in preset_settings("r3gan-tiny").items() if k not in skip]
        return [*common, *preset, f"train.schedule_kimg={yaml_text(images / 1000)}"]
    return [*common, *SETUPS[name]]
