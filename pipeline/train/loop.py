"""The GAN training loop: resumable, seeded, bit-identical on CPU across interruptions, DDP under torchrun.

Usage:
    from pipeline.train.loop import TrainPaths, train_gan
    summary = train_gan(faces, params.train, TrainPaths(checkpoint=..., generator=...), dist_info,
                        make_log=lambda start_step: DvcLiveTrainLog(...))   # faces: uint8 (N, H, W, 3)
    summary["images_per_s"], summary["loss_d"], summary["steps"]

A step is train.n_critic critic updates (one batch each) and one generator update. An epoch is
(N // batch_size) // n_critic steps, so every batch is full. Batches, latents, flips and the gradient penalty's
mixing weights are drawn from generators seeded by (seed, epoch) or (seed, step, rank), and the scheduled lr, beta2
and gamma are functions of the step: where a run resumes does not change what it draws or uses, so 2 steps +
resume + 2 steps equals 4 steps bit for bit on CPU, and a longer run (more epochs) continues a finished shorter
one exactly. What a step does is the model family's (pipeline.train.families: networks, losses, penalties, schedules);
this module owns the bookkeeping: plan, resume, wrappers, logging, checkpoints.

With train.reuse_fake the generator step scores the fake batch of the last critic step instead of drawing a
new one (the course draws a fresh G(z)); the critic sees that batch detached (the course's D step forgets
detach() and backpropagates into G for nothing), and the critic is frozen during the generator step.
Losses are synchronised every train.log_every steps (one GPU sync, not one per step); a NaN/inf loss or weight
stops the run with UserError before any checkpoint is written, so the last good checkpoint stays.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from pipeline.core.atomic import remove_stale_temporaries
from pipeline.core.config import TrainParams
from pipeline.core.device import describe, guard_batchnorm
from pipeline.core.distributed import DistInfo
from pipeline.core.errors import UserError, one_line
from pipeline.core.progress import progress
from pipeline.core.seeding import (
    GRID,
    INIT,
    NOISE,
    capture_rng_state,
    derive_seed,
    restore_rng_state,
    seed_everything,
    seeded_generator,
)
from pipeline.core.speed import SpeedSettings, resolve_speed
from pipeline.data.face_batches import FaceBatches
from pipeline.data.flips import random_flip
from pipeline.train.checkpoint import (
    load_checkpoint,
    run_signature,
    save_checkpoint,
    signature_differences,
)
from pipeline.train.ema import GeneratorEMA
from pipeline.train.families import Family, Nets, family_for
from pipeline.train.fingerprint import fingerprint, fingerprint_differences
from pipeline.train.generator_file import load_generator, save_generator
from pipeline.train.sync import Publisher, SyncRun

log = logging.getLogger(__name__)


SYNC_STAGING = ".sync"  # beside the checkpoint: hard links to the checkpoints being uploaded


@dataclass(frozen=True)
class TrainPaths:
    checkpoint: Path
    generator: Path


class TrainLog(Protocol):
    """Where rank 0 sends curves and grids (pipeline.train.log.DvcLiveTrainLog writes them for DVC)."""

    def metrics(self, step: int, values: dict[str, float]) -> None: ...

    def grid(self, name: str, images: np.ndarray) -> None: ...


@dataclass
class _Plan:
    per_rank: int
    steps_per_epoch: int
    total_steps: int
    images_per_step: int  # real images consumed per step by all ranks together


@dataclass
class _Run:
    """Everything one training run carries from step to step (what train_gan used to hold in locals)."""

    params: TrainParams
    plan: _Plan
    family: Family
    nets: Nets
    batches: FaceBatches
    grid_z: torch.Tensor
    dist_info: DistInfo
    paths: TrainPaths
    signature: dict[str, Any] | None
    g_config: dict[str, Any]
    speed: SpeedSettings
    start_step: int = 0
    wall_before: float = 0.0
    t_start: float = 0.0
    last_losses: dict[str, float] = field(default_factory=lambda: {"loss_d": float("nan"), "loss_g": float("nan")})
    fingerprint: dict[str, Any] = field(default_factory=dict)
    publisher: Publisher | None = None  # rank 0 with train.sync: publishes each checkpoint beside training


def faces_digest(faces: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(faces).data).hexdigest()


def train_gan(
    faces: np.ndarray,
    params: TrainParams,
    paths: TrainPaths,
    dist_info: DistInfo,
    make_log: Callable[[int], TrainLog] | None = None,
) -> dict[str, Any]:
    """Train (or resume, or find finished) and return the run's summary (what metrics/train.json holds).

    make_log(start_step) is called on rank 0 only when training actually runs: start_step 0 means a fresh run
    (clear old curves), more means a resumed one (keep curves up to that step).
    """
    _check_faces(faces)
    run, finished = _prepare(faces, params, paths, dist_info)
    if finished is not None:
        return finished
    assert run is not None
    train_log = make_log(run.start_step) if (make_log is not None and dist_info.is_main) else None
    plan = run.plan
    bar = (
        progress(
            total=plan.total_steps * plan.images_per_step,
            initial=run.start_step * plan.images_per_step,
            desc="train",
            unit="img",
            unit_scale=True,
        )  # fmt: skip
        if dist_info.is_main
        else None
    )
    meter = _Meter(dist_info.device)
    run.t_start = time.perf_counter()
    summary: dict[str, Any] = {}
    completed = False
    try:
        for step in range(run.start_step, plan.total_steps):
            meter.add(_train_step(run, step))
            if bar is not None:
                bar.update(plan.images_per_step)
            summary = _after_step(run, step + 1, meter, train_log, bar) or summary
        if train_log is not None:
            train_log.grid("final", _grid(run.nets, run.grid_z))
        if dist_info.is_main:
            save_generator(paths.generator, run.nets.sampler, run.g_config)  # while the last upload runs
        completed = True
    finally:
        if bar is not None:
            bar.close()
        if run.publisher is not None:
            run.publisher.close(retry=completed)
    return summary


def _prepare(
    faces: np.ndarray, params: TrainParams, paths: TrainPaths, dist_info: DistInfo
) -> tuple[_Run | None, dict[str, Any] | None]:
    """Build (or restore) the run; (None, summary) when the checkpoint holds the finished run already."""
    image_size = faces.shape[1]
    plan = _plan(params, len(faces), dist_info.world_size)
    device = dist_info.device
    on_cuda = device.type == "cuda"
    _configure_backends(params, on_cuda)
    speed = resolve_speed(params, device)

    family = family_for(params, image_size, plan.images_per_step)
    seed_everything(derive_seed(params.seed, INIT))
    g_raw, d_raw = family.build()
    g_raw.to(device)
    d_raw.to(device)
    guard_batchnorm(g_raw, device)  # MPS: contiguous inputs before BatchNorm (the EMA copy below inherits it)
    guard_batchnorm(d_raw, device)
    opt_g, opt_d = family.optimizers(g_raw, d_raw, fused=speed.fused_adam or None)
    nets = Nets(g_raw, d_raw, opt_g, opt_d, family.ema(g_raw))
    g_config = family.generator_config()

    fp = fingerprint(device, dist_info.world_size, params.deterministic)
    state, publisher = _load_resumable(faces, params, plan, paths, dist_info, image_size, fp)
    try:
        start_step, wall_before = 0, 0.0
        if state is not None:
            start_step, wall_before = _restore(state, nets)
            if start_step == plan.total_steps and state.get("summary") is not None:
                if dist_info.is_main:
                    _ensure_generator(paths.generator, nets.sampler, g_config)
                log.info("training already finished at step %d: nothing to do", start_step)
                if publisher is not None:
                    if (publisher.run.newest_step or 0) < start_step:  # its last publish failed: once more now
                        publisher.publish(paths.checkpoint, start_step)
                    publisher.close()
                return None, dict(state["summary"])
            log.info("resuming from step %d of %d (%s)", start_step, plan.total_steps, paths.checkpoint)
            differs = fingerprint_differences(state.get("fingerprint"), fp) if state.get("fingerprint") else []
            if differs and dist_info.is_main:
                log.warning("the checkpoint was written on another setup (%s): training continues, but will not be "
                            "bit-identical to an uninterrupted run", "; ".join(differs))  # fmt: skip
    except BaseException:
        if publisher is not None:
            publisher.close(retry=False)
        raise
    signature = state["signature"] if state is not None else None
    if signature is None and dist_info.is_main:
        signature = run_signature(params, image_size, faces_digest(faces), len(faces))

    _wrap_for_speed(nets, speed, dist_info)
    batches = FaceBatches(
        faces, device, params.batch_size, dist_info.rank, dist_info.world_size, params.seed,
        channels_last=speed.channels_last,
    )  # fmt: skip
    grid_z = torch.randn(params.grid_size, params.z_dim, generator=seeded_generator(derive_seed(params.seed, GRID)))
    run = _Run(params, plan, family, nets, batches, grid_z.to(device), dist_info, paths, signature, g_config,
               speed, start_step, wall_before, fingerprint=fp, publisher=publisher)  # fmt: skip
    return run, None


def _restore(state: dict[str, Any], nets: Nets) -> tuple[int, float]:
    nets.g.load_state_dict(state["G"])
    nets.d.load_state_dict(state["D"])
    nets.opt_g.load_state_dict(state["opt_g"])
    nets.opt_d.load_state_dict(state["opt_d"])
    if nets.ema is not None:
        nets.ema.module.load_state_dict(state["G_ema"])
    restore_rng_state(state["rng"])
    return int(state["step"]), float(state["wall_s"])


def _wrap_for_speed(nets: Nets, speed: SpeedSettings, dist_info: DistInfo) -> None:
    """Speed settings apply to the wrappers only: checkpoints always hold the plain modules' tensors."""
    device = dist_info.device
    if speed.channels_last:
        nets.g.to(memory_format=torch.channels_last)
        nets.d.to(memory_format=torch.channels_last)
        if nets.ema is not None:
            nets.ema.module.to(memory_format=torch.channels_last)
    g_run: nn.Module = nets.g
    d_run: nn.Module = nets.d
    if dist_info.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        g_run, d_run = DDP(nets.g, device_ids=ids), DDP(nets.d, device_ids=ids)
    d_plain: nn.Module = nets.d  # the generator step: frozen critic, no DDP gradient sync needed
    if speed.compile:
        g_run, d_run, d_plain = torch.compile(g_run), torch.compile(d_run), torch.compile(nets.d)
    nets.g_train, nets.d_train, nets.d_frozen = g_run, d_run, d_plain
    nets.autocast = speed.autocast


def _train_step(run: _Run, step: int) -> dict[str, torch.Tensor]:
    """n_critic critic updates and one generator update; the losses (and penalties) as tensors, unsynced."""
    p, plan, nets, family = run.params, run.plan, run.nets, run.family
    rank, device = run.dist_info.rank, run.dist_info.device
    values = family.apply_schedule(nets, step)
    epoch, step_in_epoch = divmod(step, plan.steps_per_epoch)
    noise = seeded_generator(derive_seed(p.seed, NOISE, step, rank), device)
    penalties: dict[str, list[torch.Tensor]] = {}
    for k in range(p.n_critic):
        real = run.batches.get(epoch, step_in_epoch * p.n_critic + k)
        if p.flip:
            real = random_flip(real, p.seed, step, k, rank, run.dist_info.world_size)
        z = torch.randn(plan.per_rank, p.z_dim, device=device, generator=noise)
        keep_graph = p.reuse_fake and k == p.n_critic - 1
        fake, loss_d, found = family.critic_step(nets, real, z, noise, values.gamma, step * p.n_critic + k,
                                                 keep_graph)  # fmt: skip
        for name, value in found.items():
            penalties.setdefault(name, []).append(value)
    z = None if p.reuse_fake else torch.randn(plan.per_rank, p.z_dim, device=device, generator=noise)
    loss_g = family.generator_step(nets, fake if p.reuse_fake else None, real, z)
    if nets.ema is not None:
        nets.ema.update(nets.g, step)
    return {"loss_d": loss_d, "loss_g": loss_g, **{k: torch.stack(v).mean() for k, v in penalties.items()}}


class _Meter:
    """Sums of the logged values between two syncs, on the device (one GPU sync per log, not per step)."""

    NAMES = ("loss_d", "loss_g", "r1", "r2")

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(2, len(self.NAMES), device=device, dtype=torch.float64)  # sums, counts
        self.t_interval, self.steps_interval = time.perf_counter(), 0

    def add(self, values: dict[str, torch.Tensor]) -> None:
        for i, name in enumerate(self.NAMES):
            if name in values:
                self.sums[0, i] += values[name].double()
                self.sums[1, i] += 1
        self.steps_interval += 1

    def sync(self, dist_info: DistInfo, step: int, checkpoint: Path) -> tuple[dict[str, float], float]:
        """Means over every rank since the last sync (NaN/inf stops the run), and this rank's steps per second."""
        sums, counts = dist_info.all_reduce_sum(self.sums.clone()).tolist()
        self.sums.zero_()
        values = {name: s / n for name, s, n in zip(self.NAMES, sums, counts, strict=True) if n > 0}
        for name, value in values.items():
            if not np.isfinite(value):
                raise UserError(
                    f"training diverged: {name} is {value} by step {step}; {checkpoint} keeps the last good state. "
                    "Lower train.lr_d / train.lr_g or change train.loss, then start over"
                )
        now = time.perf_counter()
        rate = self.steps_interval / max(now - self.t_interval, 1e-9)
        self.t_interval, self.steps_interval = now, 0
        return values, rate


def _after_step(run: _Run, done: int, meter: _Meter, train_log: TrainLog | None, bar: Any) -> dict[str, Any] | None:
    """Log, grid and checkpoint when due; the summary when this was the last step."""
    plan, p = run.plan, run.params
    epoch_end = done % plan.steps_per_epoch == 0
    checkpoint_due = done % p.checkpoint_every == 0 or done == plan.total_steps
    if done % p.log_every == 0 or epoch_end or checkpoint_due:
        values, steps_per_s = meter.sync(run.dist_info, done, run.paths.checkpoint)
        run.last_losses = {"loss_d": values["loss_d"], "loss_g": values["loss_g"]}
        if bar is not None:
            bar.set_postfix(loss_d=f"{values['loss_d']:.3g}", loss_g=f"{values['loss_g']:.3g}")
        if train_log is not None:
            train_log.metrics(done, {**values, **_scheduled(run, done - 1), "epoch": done / plan.steps_per_epoch,
                                     "images_per_s": steps_per_s * plan.images_per_step})  # fmt: skip
    if epoch_end and train_log is not None:
        train_log.grid(f"epoch_{done // plan.steps_per_epoch:03d}", _grid(run.nets, run.grid_z))
    if not checkpoint_due:
        return None
    return _checkpoint(run, done)


def _scheduled(run: _Run, step: int) -> dict[str, float]:
    """The curves of the schedules: lr always, gamma when the penalties are on."""
    values = run.family.schedule(step)
    curves = {"lr_g": values.lr_g, "lr_d": values.lr_d}
    if run.params.gamma > 0:
        curves["gamma"] = values.gamma
    if run.params.beta2_end is not None:
        curves["beta2"] = values.beta2
    return curves


def _checkpoint(run: _Run, done: int) -> dict[str, Any] | None:
    """Check the weights (finite, equal on every rank), write the checkpoint; the summary at the last step."""
    nets, plan = run.nets, run.plan
    _check_finite_weights(done, run.paths.checkpoint, nets.g, nets.d)
    _check_ranks_in_sync(run.dist_info, done, nets.g, nets.d, nets.ema)
    run_s = time.perf_counter() - run.t_start
    summary = None
    if done == plan.total_steps:
        summary = _summary(run.params, plan, run.dist_info, done, run.start_step, run.wall_before + run_s, run_s,
                           run.last_losses, nets.sampler)  # fmt: skip
        summary["speed"] = run.speed.as_dict()  # which speed options ran (metrics/train.json)
    if run.dist_info.is_main:
        state = _checkpoint_state(run.signature, done, plan, nets, run.wall_before + run_s, summary)
        state["fingerprint"] = run.fingerprint
        save_checkpoint(run.paths.checkpoint, state)
        if run.publisher is not None:
            run.publisher.publish(run.paths.checkpoint, done)  # returns at once unless the last upload is unfinished
    return summary


def _check_faces(faces: np.ndarray) -> None:
    if not isinstance(faces, np.ndarray) or faces.dtype != np.uint8 or faces.ndim != 4 or faces.shape[-1] != 3:
        raise UserError(f"faces must be uint8 (N, H, W, 3), got {getattr(faces, 'dtype', type(faces))} "
                        f"{getattr(faces, 'shape', '')}")  # fmt: skip
    if faces.shape[1] != faces.shape[2]:
        raise UserError(f"faces must be square, got {faces.shape[1]}x{faces.shape[2]}")


def _plan(params: TrainParams, count: int, world_size: int) -> _Plan:
    if params.batch_size % world_size:
        raise UserError(f"train.batch_size {params.batch_size} is not a multiple of the {world_size} processes")
    steps_per_epoch = (count // params.batch_size) // params.n_critic
    if steps_per_epoch == 0:
        raise UserError(
            f"only {count} faces: one step needs train.batch_size x train.n_critic = "
            f"{params.batch_size * params.n_critic}"
        )
    total = params.epochs * steps_per_epoch
    if params.max_steps:
        total = min(total, params.max_steps)
    return _Plan(
        per_rank=params.batch_size // world_size,
        steps_per_epoch=steps_per_epoch,
        total_steps=total,
        images_per_step=params.batch_size * params.n_critic,
    )


def _configure_backends(params: TrainParams, on_cuda: bool) -> None:
    if not on_cuda:
        return  # CPU kernels are deterministic already
    torch.backends.cudnn.benchmark = not params.deterministic
    torch.backends.cudnn.deterministic = params.deterministic
    torch.backends.cuda.matmul.allow_tf32 = not params.deterministic
    torch.backends.cudnn.allow_tf32 = not params.deterministic
    if params.deterministic:
        torch.use_deterministic_algorithms(True)


def _load_resumable(
    faces: np.ndarray,
    params: TrainParams,
    plan: _Plan,
    paths: TrainPaths,
    dist_info: DistInfo,
    image_size: int,
    fp: dict[str, Any],
) -> tuple[dict[str, Any] | None, Publisher | None]:
    """Rank 0 reads and vets the checkpoint (the local one, or a newer synced one), every rank gets rank 0's
    verdict: the state, None, or the error. With train.sync, rank 0 also gets the run's publisher (lease held)."""
    verdict: tuple[str, Any] = ("none", None)
    publisher = None
    if dist_info.is_main:
        try:
            for stale in remove_stale_temporaries(paths.checkpoint, paths.generator):
                log.info("removed %s, left by an interrupted checkpoint write", stale)
            state = load_checkpoint(paths.checkpoint)
            current = None
            if state is not None or params.sync:
                current = run_signature(params, image_size, faces_digest(faces), len(faces))
            if state is not None:
                state = _vet(state, current, params, plan, paths.checkpoint)
            if params.sync:
                publisher, synced = _open_sync(params, current, state, plan, paths, fp)
                if synced:
                    state = _vet(load_checkpoint(paths.checkpoint), current, params, plan, paths.checkpoint)
            verdict = ("state", state) if state is not None else ("none", None)
        except UserError as e:
            if publisher is not None:
                publisher.close(retry=False)
                publisher = None
            verdict = ("error", str(e))
    kind, value = dist_info.broadcast_object(verdict)
    if kind == "error":
        raise UserError(value)
    return value, publisher


def _vet(state: dict[str, Any] | None, current: dict[str, Any], params: TrainParams, plan: _Plan, path: Path):
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


def _open_sync(
    params: TrainParams,
    signature: dict[str, Any],
    local: dict[str, Any] | None,
    plan: _Plan,
    paths: TrainPaths,
    fp: dict[str, Any],
) -> tuple[Publisher, bool]:
    """Take the run's lease at train.sync and install a newer verified synced checkpoint as paths.checkpoint:
    (the publisher for this run's checkpoints, whether a synced one was installed)."""
    try:
        run = SyncRun.open(params.sync, signature)
        lease = run.lease(params.sync_stale_s)
        lease.acquire()
    except UserError:
        raise
    except Exception as e:  # the store's own errors: no network, no bucket, no permission
        raise UserError(f"train.sync {params.sync}: cannot use it ({type(e).__name__}: {one_line(e, 200)})") from None
    try:
        local_step = int(local["step"]) if local is not None else 0
        restart = params.on_mismatch == "restart"
        synced = run.resume(local_step, signature, paths.checkpoint, restart, plan.total_steps)
        lease.start_heartbeat()
    except BaseException as e:
        lease.release()
        if isinstance(e, Exception) and not isinstance(e, UserError):
            raise UserError(f"train.sync {run.url}: cannot read it ({type(e).__name__}: {one_line(e, 200)})") from None
        raise
    staging = paths.checkpoint.parent / SYNC_STAGING
    return Publisher(run, staging, lease, {"signature": signature, "fingerprint": fp}), synced is not None


def _checkpoint_state(
    signature: dict[str, Any] | None, step: int, plan: _Plan, nets: Nets, wall_s: float, summary: dict[str, Any] | None
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


def weights_digest(*modules: nn.Module) -> str:
    """sha256 of the modules' parameters (names and raw bytes): equal digests, equal weights."""
    h = hashlib.sha256()
    for m in modules:
        for name, p in m.named_parameters():
            h.update(name.encode())
            h.update(p.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _check_ranks_in_sync(dist_info: DistInfo, step: int, g: nn.Module, d: nn.Module, ema: GeneratorEMA | None) -> None:
    """DDP keeps parameters equal on every rank (BatchNorm running statistics legitimately differ); verify it."""
    if not dist_info.distributed:
        return
    digest = weights_digest(g, d, *([ema.module] if ema is not None else []))
    digests = dist_info.all_gather_object(digest)
    if len(set(digests)) != 1:
        raise RuntimeError(f"DDP ranks out of sync at step {step}: weight digests {digests}")
    log.info("step %d: rank %d weights %s, equal on all %d ranks", step, dist_info.rank, digest[:16], len(digests))


def _check_finite_weights(step: int, path: Path, *modules: nn.Module) -> None:
    for m in modules:
        if not all(torch.isfinite(p).all() for p in m.parameters()):
            raise UserError(
                f"training diverged: non-finite weights at step {step}; {path} keeps the last good state. "
                "Lower train.lr_d / train.lr_g or change train.loss, then start over"
            )


@torch.no_grad()
def _grid(nets: Nets, z: torch.Tensor) -> np.ndarray:
    model = nets.sampler
    was_training = model.training
    model.eval()
    with nets.autocast():
        images = model(z).float()
    model.train(was_training)
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _ensure_generator(path: Path, model: nn.Module, config: dict[str, Any]) -> None:
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


def _summary(
    params: TrainParams,
    plan: _Plan,
    dist_info: DistInfo,
    steps: int,
    start_step: int,
    wall_s: float,
    run_s: float,
    losses: dict[str, float],
    generator: nn.Module,
) -> dict[str, Any]:
    device = dist_info.device
    return {
        "steps": steps,
        "epochs": steps / plan.steps_per_epoch,
        "images_seen": steps * plan.images_per_step,
        "images_per_s": (steps - start_step) * plan.images_per_step / max(run_s, 1e-9),
        "loss_d": losses["loss_d"],
        "loss_g": losses["loss_g"],
        "wall_s": wall_s,
        "resumed_from_step": start_step,
        "device": describe(device),
        "world_size": dist_info.world_size,
        "torch": str(torch.__version__),
        "loss": params.loss,
        "generator_sha256": weights_digest(generator),
    }
