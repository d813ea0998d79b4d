"""Where a training starts: the local checkpoint or a newer synced one, vetted against the params, or step 0.

Usage:
    from pipeline.train.resume import resumed, restore, checkpoint_state
    with resumed(faces, params.train, plan, paths, dist_info, fp) as start:   # every rank
        start.state       # the checkpoint's state to continue from, or None: train from step 0
        start.signature   # what this training's checkpoints record (rank 0; None on the other ranks)
        start.publisher   # rank 0 with train.sync: publishes each checkpoint (pipeline.train.sync), else None
        step, wall_s = restore(start.state, nets)
        ...               # train; leaving the with waits for the last upload and frees the sync lease
    save_checkpoint(path, checkpoint_state(signature, step, plan, nets, wall_s, summary))

Rank 0 reads and vets; every rank gets rank 0's verdict (the state, none, or the error), so all start from the
same step or all stop with the same one-line error. Vetting: a checkpoint from other params (its signature differs)
or with more steps than asked is refused (UserError), or with train.on_mismatch=restart ignored with a warning.
With train.sync, rank 0 also takes the lease of these params' folder there and installs a newer verified synced
checkpoint over the local one (pipeline.train.sync), then vets that one the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.core.atomic import remove_stale_temporaries
from pipeline.core.config import TrainParams
from pipeline.core.distributed import DistInfo
from pipeline.core.errors import UserError, one_line
from pipeline.core.seeding import capture_rng_state, restore_rng_state
from pipeline.train.checkpoint import load_checkpoint, signature_differences, training_signature
from pipeline.train.families import Nets
from pipeline.train.generator_file import load_generator, save_generator
from pipeline.train.plan import Plan, TrainPaths
from pipeline.train.sync import Publisher, SyncFolder

log = logging.getLogger(__name__)

SYNC_STAGING = ".sync"  # beside the checkpoint: hard links to the checkpoints being uploaded


@dataclass(frozen=True)
class Start:
    """Where a training starts (see the module docstring)."""

    state: dict[str, Any] | None
    signature: dict[str, Any] | None
    publisher: Publisher | None


def faces_digest(faces: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(faces).data).hexdigest()


@contextlib.contextmanager
def resumed(
    faces: np.ndarray, params: TrainParams, plan: Plan, paths: TrainPaths, dist_info: DistInfo, fp: dict[str, Any]
) -> Iterator[Start]:
    """The Start of this training, for the span of the with (which holds the sync publisher, if any)."""
    with contextlib.ExitStack() as held:
        verdict: tuple[str, Any] = ("none", None)
        publisher = signature = None
        if dist_info.is_main:
            try:
                state, signature, publisher = _vetted_state(faces, params, plan, paths, fp, held)
                verdict = ("state", state) if state is not None else ("none", None)
            except UserError as e:
                verdict = ("error", str(e))
        kind, value = dist_info.broadcast_object(verdict)
        if kind == "error":
            raise UserError(value)
        if signature is None and value is not None:
            signature = value["signature"]
        yield Start(value, signature, publisher)


def _vetted_state(
    faces: np.ndarray, params: TrainParams, plan: Plan, paths: TrainPaths, fp: dict[str, Any],
    held: contextlib.ExitStack,
) -> tuple[dict[str, Any] | None, dict[str, Any], Publisher | None]:  # fmt: skip
    """Rank 0: (the state to resume or None, this training's signature, the publisher entered into held)."""
    for stale in remove_stale_temporaries(paths.checkpoint, paths.generator):
        log.info("removed %s, left by an interrupted checkpoint write", stale)
    state = load_checkpoint(paths.checkpoint)
    current = training_signature(params, faces.shape[1], faces_digest(faces), len(faces))
    if state is not None:
        state = _vet(state, current, params, plan, paths.checkpoint)
    publisher = None
    if params.sync:
        publisher = held.enter_context(_open_publisher(params, current, fp, paths))
        if _install_synced(publisher, params, state, plan, paths):
            state = _vet(load_checkpoint(paths.checkpoint), current, params, plan, paths.checkpoint)
    signature = state["signature"] if state is not None else current
    return state, signature, publisher


def _vet(state: dict[str, Any] | None, current: dict[str, Any], params: TrainParams, plan: Plan, path: Path):
    """The state if it may be resumed; None (restart) or UserError (refuse) when it is from other params."""
    if state is None:
        return None
    diffs = signature_differences(state["signature"], current)
    if int(state["step"]) > plan.total_steps:
        diffs.append(f"steps: the checkpoint has {state['step']}, more than the {plan.total_steps} asked")
    if diffs and params.on_mismatch == "restart":
        log.warning("%s is from other params (%s): starting over", path, "; ".join(diffs))
        return None
    if diffs:
        raise UserError(
            f"{path} is from other params ({'; '.join(diffs)}); to start over, delete it "
            "or set train.on_mismatch=restart"
        )
    return state


def _open_publisher(params: TrainParams, signature: dict[str, Any], fp: dict[str, Any], paths: TrainPaths):
    """Take the lease of these params' folder at train.sync: the Publisher that holds it (a context manager)."""
    try:
        folder = SyncFolder.open(params.sync, signature)
        lease = folder.lease(params.sync_stale_s)
        lease.acquire()
    except UserError:
        raise
    except Exception as e:  # the store's own errors: no network, no bucket, no permission
        raise UserError(f"train.sync {params.sync}: cannot use it ({type(e).__name__}: {one_line(e, 200)})") from None
    staging = paths.checkpoint.parent / SYNC_STAGING
    return Publisher(folder, staging, lease, {"signature": signature, "fingerprint": fp})


def _install_synced(
    publisher: Publisher, params: TrainParams, local: dict[str, Any] | None, plan: Plan, paths: TrainPaths
) -> bool:
    """Install a newer verified synced checkpoint as paths.checkpoint; whether one was. Starts the lease's
    heartbeat."""
    folder = publisher.folder
    try:
        local_step = int(local["step"]) if local is not None else 0
        restart = params.on_mismatch == "restart"
        synced = folder.resume(local_step, publisher.meta["signature"], paths.checkpoint, restart, plan.total_steps)
    except UserError:
        raise
    except Exception as e:  # the store's own errors
        raise UserError(f"train.sync {folder.url}: cannot read it ({type(e).__name__}: {one_line(e, 200)})") from None
    publisher.lease.start_heartbeat()
    return synced is not None


def restore(state: dict[str, Any], nets: Nets) -> tuple[int, float]:
    """Load the state into nets and the RNGs; (its step, its training seconds so far)."""
    nets.g.load_state_dict(state["G"])
    nets.d.load_state_dict(state["D"])
    nets.opt_g.load_state_dict(state["opt_g"])
    nets.opt_d.load_state_dict(state["opt_d"])
    if nets.ema is not None:
        nets.ema.module.load_state_dict(state["G_ema"])
    restore_rng_state(state["rng"])
    return int(state["step"]), float(state["wall_s"])


def checkpoint_state(
    signature: dict[str, Any] | None, step: int, plan: Plan, nets: Nets, wall_s: float, summary: dict[str, Any] | None
) -> dict[str, Any]:
    epoch, step_in_epoch = divmod(step, plan.steps_per_epoch)
    return {
        "signature": signature,
        "step": step,
        "epoch": epoch,
        "step_in_epoch": step_in_epoch,  # position in the epoch's permutation: batch step_in_epoch * n_critic
        "G": nets.g.state_dict(),
        "D": nets.d.state_dict(),
        "G_ema": nets.ema.module.state_dict() if nets.ema is not None else None,
        "opt_g": nets.opt_g.state_dict(),
        "opt_d": nets.opt_d.state_dict(),
        "scaler": None,  # bf16 autocast needs no gradient scaler
        "rng": capture_rng_state(),
        "wall_s": wall_s,
        "summary": summary,
        "torch": str(torch.__version__),
    }


def ensure_generator(path: Path, model: nn.Module, config: Any) -> None:
    """Write generator.pt from the finished checkpoint unless the file there already holds exactly these weights."""
    if path.exists():
        try:
            on_disk = load_generator(path).state_dict()
            current = model.state_dict()
            if on_disk.keys() == current.keys() and all(torch.equal(on_disk[k], current[k].cpu()) for k in current):
                return
        except UserError:
            pass
    save_generator(path, model, config)
