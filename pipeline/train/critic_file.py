"""The trained critic, read back from the resumable checkpoint, for choosing among sampled candidates.

Usage:
    from pipeline.train.critic_file import load_critic
    critic = load_critic(Path("models/checkpoint.pt"), params.train, image_size=64)
    critic.module(images)           # (N, 3, H, W) in [-1, 1] -> (N,) logits; eval mode, float32, on the CPU
    critic.step, critic.loss        # the checkpoint's generator step and the objective (train.loss) it trained on

The checkpoint (pipeline.train.checkpoint, written again at the training loop's last step) holds the critic's state
dict under "D" and the params that shaped the run under "signature". The critic is rebuilt with the family registry
from params.train and data.image_size; the signature's values of the keys that shape it must equal those params
(instance norm and no norm have the same state dict, so loading alone would not notice). Everything that knows the
families' API is in load_critic, the one place to adapt when that API changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pipeline.core.config import MOVED_TRAIN_KEYS, TrainParams
from pipeline.core.errors import UserError, one_line
from pipeline.train.checkpoint import signature_value
from pipeline.train.families import family_for

# signature keys whose values decide the critic's layers (pipeline/train/checkpoint.py's training_signature)
CRITIC_KEYS = ("model", "r3gan_preset", "critic_norm", "spectral_norm", "d_features")


@dataclass(frozen=True)
class TrainedCritic:
    module: nn.Module
    step: int
    loss: str


def load_critic(path: Path, train: TrainParams, image_size: int) -> TrainedCritic:
    """The checkpoint's critic in eval mode; UserError when the file is missing, holds no critic, or another one."""
    path = Path(path)
    state = _read(path)
    if state is None or not isinstance(state.get("D"), dict):
        what = "is not found" if state is None else "holds no critic (D)"
        raise UserError(f"sample.rejection needs the trained critic, but {path} {what}: set sample.rejection=none "
                        "or keep the train stage's checkpoint.pt beside generator.pt")  # fmt: skip
    signature = state.get("signature") or {}
    current = {f"train.{k}": signature_value(train, k) for k in CRITIC_KEYS} | {"data.image_size": image_size}
    differ = [f"{_param_name(k)} {signature.get(k)!r} (params: {v!r})"
              for k, v in current.items() if signature.get(k) != v]
    if differ:
        raise UserError(f"{path}: its critic was trained with {', '.join(differ)}: set those params as trained")
    with torch.random.fork_rng(devices=[]):  # build() initialises from the global RNG: leave the caller's alone
        _, critic = family_for(train, image_size).build()
    try:
        critic.load_state_dict(state["D"])
    except RuntimeError as e:
        raise UserError(f"{path}: its critic does not fit train.* params ({one_line(e, 200)})") from None
    return TrainedCritic(critic.eval(), int(state.get("step", 0)), str(signature.get("train.loss", "")))


def _param_name(signature_key: str) -> str:
    """The params key a signature key is set by today (train.critic_norm is set as train.dcgan.critic_norm)."""
    name = signature_key.removeprefix("train.")
    return f"train.{MOVED_TRAIN_KEYS[name]}" if name in MOVED_TRAIN_KEYS else signature_key


def _read(path: Path) -> dict | None:
    """The checkpoint's dict; None when absent, {} for a file that is no dict (such as a bare state dict list)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise UserError(f"{path}: unreadable as a checkpoint ({one_line(e, 160)})") from None
    return state if isinstance(state, dict) else {}
