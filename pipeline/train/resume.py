"""Where a training starts: the local checkpoint or a newer synced or earlier one, vetted against the params, or step 0.

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
same step or all stop with the same one-line error. Candidates, the newest verified step wins: the local
checkpoint; with train.sync, the synced checkpoints newer than it (rank 0 also takes the lease of these params'
folder there); with train.resume_from, an earlier run's checkpoints newer than both (pipeline.train.resume_source:
only read, no lease). A synced or earlier candidate is downloaded to a temporary beside the checkpoint and renamed
over it only after every check: size and sha256 where a pointer records them (pipeline.train.sync), then its params
(signature), its step and its fingerprint against what latest.json records, and no more steps than asked; one that
fails is skipped with one warning for the next, so the local checkpoint is never lost to a bad or foreign file.
train.on_mismatch decides only when no checkpoint of these params exists anywhere: refuse (UserError naming what
differs) or restart (a warning, step 0). A local checkpoint of other params under refuse is refused at once, before
any synced one could replace it. A train.resume_from that yields nothing this training can continue, other params
aside (damaged, more steps than asked), with no other checkpoint to start from, is a UserError whatever
train.on_mismatch says: the run was asked to continue, not to start over."""

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
from pipeline.train.resume_source import ResumeSource
from pipeline.train.sync import POINTER, Publisher, SyncFolder, store_errors

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
    current = training_signature(params, faces.shape[1], faces_digest(faces), len(faces))
    # found before anything is written or leased: a source that is not there stops here
    source = ResumeSource.open(params.resume_from, current, paths.checkpoint) if params.resume_from else None
    state = load_checkpoint(paths.checkpoint)
    foreign = []
    if state is not None and (diffs := _differences(state, current, plan)):
        if params.on_mismatch == "refuse":  # kept as it is: never replaced, not even by a synced checkpoint
            raise UserError(f"{paths.checkpoint} is from other params ({'; '.join(diffs)}); to start over, delete it "
                            "or set train.on_mismatch=restart")  # fmt: skip
        state, foreign = None, [f"{paths.checkpoint} ({'; '.join(diffs)})"]
    publisher = None
    if params.sync:
        publisher = held.enter_context(_open_publisher(params, current, fp, paths))
        synced = _install_synced(publisher, params, current, state, plan, paths)
        state = synced if synced is not None else state
        foreign += publisher.folder.other_params
    if source is not None:
        earlier, others = _install_earlier(source, current, state, plan, paths)
        state = earlier if earlier is not None else state
        foreign += others
    if state is None and foreign:  # no checkpoint of these params anywhere: train.on_mismatch decides
        if params.on_mismatch == "refuse":
            raise UserError(f"only checkpoints of other params to resume from: {', '.join(foreign)}; to start over, "
                            "delete them (or unset train.resume_from) or set train.on_mismatch=restart")  # fmt: skip
        log.warning("only checkpoints of other params to resume from (%s): starting over", ", ".join(foreign))
    return state, (state["signature"] if state is not None else current), publisher


def _differences(state: dict[str, Any], current: dict[str, Any], plan: Plan) -> list[str]:
    """Why the state may not be resumed by this training: its params differ, or it has more steps than asked."""
    diffs = signature_differences(state["signature"], current)
    if int(state["step"]) > plan.total_steps:
        diffs.append(f"steps: the checkpoint has {state['step']}, more than the {plan.total_steps} asked")
    return diffs


def _open_publisher(params: TrainParams, signature: dict[str, Any], fp: dict[str, Any], paths: TrainPaths):
    """Take the lease of these params' folder at train.sync: the Publisher that holds it (a context manager)."""
    with store_errors("train.sync", params.sync, "use"):
        folder = SyncFolder.open(params.sync, signature)
        lease = folder.lease(params.sync_stale_s)
        lease.acquire()
    staging = paths.checkpoint.parent / SYNC_STAGING
    return Publisher(folder, staging, lease, {"signature": signature, "fingerprint": fp})


def _install_synced(
    publisher: Publisher, params: TrainParams, current: dict[str, Any], local: dict[str, Any] | None, plan: Plan,
    paths: TrainPaths,
) -> dict[str, Any] | None:  # fmt: skip
    """Install the newest synced checkpoint newer than local that passes every check as paths.checkpoint; its
    state, or None (paths.checkpoint untouched). Starts the lease's heartbeat."""
    folder, passed = publisher.folder, {}
    check = _content_check(current, plan, passed, folder.other_params, folder.url)
    local_step = int(local["step"]) if local is not None else 0
    with store_errors("train.sync", folder.url):
        synced = folder.resume(local_step, current, paths.checkpoint, plan.total_steps, check)
    publisher.lease.start_heartbeat()
    return passed.get("state") if synced is not None else None


def _install_earlier(
    source: ResumeSource, current: dict[str, Any], local: dict[str, Any] | None, plan: Plan, paths: TrainPaths
) -> tuple[dict[str, Any] | None, list[str]]:
    """train.resume_from, read only: install its newest checkpoint newer than local that passes every check as
    paths.checkpoint; (its state or None, its candidates of other params). UserError when it has nothing this
    training can use (damaged, more steps than asked) and no other checkpoint of these params exists: a source named
    to resume from is never passed over for step 0 without a word; only other params leave it to train.on_mismatch."""
    passed: dict[str, Any] = {}
    check = _content_check(current, plan, passed, source.other_params, source.where)
    local_step = int(local["step"]) if local is not None else 0
    with store_errors("train.resume_from", source.url):
        earlier = source.resume(local_step, current, paths.checkpoint, plan.total_steps, check)
    if earlier is None and local is None and not source.other_params:
        raise UserError(f"train.resume_from {source.url}: no checkpoint there that this training can continue (the "
                        'warning above says why): name another earlier run, or set train.resume_from "" to start '
                        "over")  # fmt: skip
    return (passed.get("state") if earlier is not None else None), source.other_params


def _content_check(current: dict[str, Any], plan: Plan, passed: dict[str, Any], foreign: list[str], where: str):
    """check(candidate, entry) for a candidate downloaded from where (SyncFolder.resume, ResumeSource.resume): what
    is wrong with its content, or None, when its state is kept in passed["state"]. Other params go into foreign."""

    def check(candidate: Path, entry: dict[str, Any]) -> str | None:
        try:
            state = load_checkpoint(candidate)
        except UserError as e:
            return f"is not a checkpoint this version reads ({one_line(e, 160)})"
        if diffs := signature_differences(state["signature"], current):
            foreign.append(f"{where}/{entry['file']} ({'; '.join(diffs)})")
            return f"is from other params ({'; '.join(diffs)})"
        problem = _candidate_problem(state, entry, plan)
        passed["state"] = state if problem is None else None
        return problem

    return check


def _candidate_problem(state: dict[str, Any], entry: dict[str, Any], plan: Plan) -> str | None:
    """What else is wrong with a downloaded synced checkpoint of these params (None: it may replace the local one):
    another step or another fingerprint than latest.json records for it, more steps than asked."""
    if int(state["step"]) != int(entry["step"]):
        return f"holds step {state['step']}, not the {entry['step']} {POINTER} records"
    if "fingerprint" in entry and state.get("fingerprint") != entry["fingerprint"]:
        return f"was written on another setup than {POINTER} records (fingerprints differ)"
    if int(state["step"]) > plan.total_steps:
        return f"has {state['step']} steps, more than the {plan.total_steps} asked"
    return None


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
