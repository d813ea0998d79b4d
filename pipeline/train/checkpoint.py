"""The resumable training checkpoint: what it holds, how it is written, and when it may be resumed.

Usage:
    from pipeline.train.checkpoint import training_signature, save_checkpoint, load_checkpoint, signature_differences
    sig = training_signature(train_params, image_size=64, data_sha256=digest, data_count=71314)
    save_checkpoint(Path("models/checkpoint.pt"), {"signature": sig, "step": 500, ...})   # atomic
    state = load_checkpoint(Path("models/checkpoint.pt"))     # None when absent
    signature_differences(state["signature"], sig)            # ["train.loss: 'gan' -> 'wgan'", ...]

The file is a dict of tensors and plain types, loadable with torch.load(weights_only=True). Writing goes to a temporary
file beside the target, fsynced and renamed over it, so a kill -9 at any moment leaves either the old or the new
checkpoint; stale temporaries from such a kill are removed by pipeline.core.atomic's remove_stale_temporaries().
The signature holds the params that shape the weights. Not in it: epochs and max_steps (a longer run continues a
shorter one exactly: batches and latents depend only on the seed and the step), checkpointing, logging, and
speed settings (bf16, compile, channels_last, fused_adam, deterministic).
The model families' own params (train.dcgan, train.r3gan, ...) are in it as follows. The keys that were flat train
keys before the families had sections (pipeline.core.config.MOVED_TRAIN_KEYS) keep their flat names and are held by
every training, as they always were, so the signatures of earlier checkpoints and the names of their sync folders
(pipeline/train/sync.py) are unchanged; any other key of the active family's section is `train.<family>.<key>`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pipeline.core.atomic import atomic_path, torch_bytes
from pipeline.core.config import MOVED_TRAIN_KEYS, TrainParams
from pipeline.core.errors import UserError, one_line
from pipeline.train.families import family_params

FORMAT = 1
SIGNATURE_KEYS = (
    "model", "r3gan_preset", "loss", "critic_norm", "spectral_norm", "z_dim", "g_features", "d_features", "batch_size",
    "optimizer", "lr_g", "lr_d", "betas", "n_critic", "clip_value", "gp_lambda", "reuse_fake", "ema", "seed",
    "lr_g_end", "lr_d_end", "beta2_end", "schedule_kimg", "gamma", "gamma_end", "penalties", "reg_every",
    "ema_kimg", "ema_rampup", "flip",
)  # fmt: skip


def training_signature(params: TrainParams, image_size: int, data_sha256: str, data_count: int) -> dict[str, Any]:
    sig: dict[str, Any] = {f"train.{k}": signature_value(params, k) for k in SIGNATURE_KEYS}
    sig["train.betas"] = list(params.betas)
    sig["train.penalties"] = list(params.penalties)
    if params.augment:  # only when on: the signatures (and sync folder names) of earlier checkpoints stay as they were
        sig["train.augment"] = sorted(params.augment)
    section = family_params(params, params.model)
    flat = {moved for moved in MOVED_TRAIN_KEYS.values() if moved.startswith(f"{params.model}.")}
    for key, value in (section.model_dump() if section is not None else {}).items():
        if f"{params.model}.{key}" not in flat:
            sig[f"train.{params.model}.{key}"] = value
    sig["data.image_size"] = image_size
    sig["faces.sha256"] = data_sha256
    sig["faces.count"] = data_count
    return sig


def signature_value(params: TrainParams, key: str) -> Any:
    """The value a signature key holds: a family key moved under train.<family> is read from there."""
    if key not in MOVED_TRAIN_KEYS:
        return getattr(params, key)
    family, name = MOVED_TRAIN_KEYS[key].split(".")
    return getattr(family_params(params, family), name)


def signature_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    keys = sorted(set(saved) | set(current))
    return [f"{k}: {saved.get(k, '?')!r} -> {current.get(k, '?')!r}" for k in keys if saved.get(k) != current.get(k)]


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(torch_bytes({"format": FORMAT, **state}))


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(
            f"{path}: unreadable checkpoint ({one_line(e, 160)}); delete it to start over"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path}: not a checkpoint of this version (format {FORMAT}); delete it to start over")
    return state
