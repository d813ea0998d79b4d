"""The GAN training loop: resumable, seeded, bit-identical on CPU across interruptions, DDP under torchrun.

Usage:
    from pipeline.train.loop import TrainPaths, train_gan
    summary = train_gan(faces, params.train, TrainPaths(checkpoint=..., generator=...), dist_info,
                        make_log=lambda start_step: DvcLiveTrainLog(...))   # faces: uint8 (N, H, W, 3)
    summary["images_per_s"], summary["loss_d"], summary["steps"]
    train_gan(..., budget=Budget.from_minutes(30))   # at the budget: checkpoint, publish, summary["stopped"] set

A step is train.n_critic critic updates (one batch each) and one generator update (pipeline/train/plan.py).
Batches, latents, flips and the gradient penalty's mixing weights are drawn from generators seeded by (seed, epoch)
or (seed, step, rank), and the scheduled lr, beta2 and gamma are functions of the step: where a training resumes does
not change what it draws or uses, so 2 steps + resume + 2 steps equals 4 steps bit for bit on CPU, and a longer
training (more epochs) continues a finished shorter one exactly. What a step does is the model family's
(pipeline.train.families: networks, losses, penalties, schedules); this module is the loop around it: build,
resume, step, log, checkpoint. Beside it: plan.py (steps and paths), resume.py (the checkpoint or a synced one,
vetted; the sync publisher), wrappers.py (DDP, compile, channels_last), meter.py (the logged values), health.py
(finite weights, ranks in sync), snapshots.py (snapshots scored while training, the best kept, train.patience),
budget.py (train.max_minutes: when to stop early, checked after every step).

With train.reuse_fake the generator step scores the fake batch of the last critic step instead of drawing a
new one (the course draws a fresh G(z)); the critic sees that batch detached (the course's D step forgets
detach() and backpropagates into G for nothing), and the critic is frozen during the generator step.
Losses are synchronised every train.log_every steps (one GPU sync, not one per step); a NaN/inf loss or weight
stops the training with UserError before any checkpoint is written, so the last good checkpoint stays.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from pipeline.core.config import TrainParams
from pipeline.core.device import describe, guard_batchnorm
from pipeline.core.distributed import DistInfo
from pipeline.core.progress import progress
from pipeline.core.seeding import GRID, INIT, NOISE, derive_seed, seed_everything, seeded_generator
from pipeline.core.speed import SpeedSettings, resolve_speed
from pipeline.data.face_batches import FaceBatches
from pipeline.data.flips import random_flip
from pipeline.train.augment import augmentation
from pipeline.train.budget import Budget, stopped_summary
from pipeline.train.checkpoint import save_checkpoint
from pipeline.train.families import Family, Nets, family_for
from pipeline.train.fingerprint import fingerprint, fingerprint_differences
from pipeline.train.generator_file import save_generator
from pipeline.train.health import check_finite_weights, check_ranks_in_sync, weights_digest
from pipeline.train.meter import Meter
from pipeline.train.plan import Plan, TrainPaths, check_faces, plan_steps
from pipeline.train.resume import Start, checkpoint_state, ensure_generator, restore, resumed
from pipeline.train.snapshots import Snapshots, SnapshotScorer, keep_best_file, saved_best, stopped_early
from pipeline.train.sync import Publisher
from pipeline.train.wrappers import configure_backends, wrap_for_speed

log = logging.getLogger(__name__)

__all__ = ["TrainLog", "TrainPaths", "Trainer", "train_gan"]


class TrainLog(Protocol):
    """Where rank 0 sends curves and grids (pipeline.train.log.DvcLiveTrainLog writes them for DVC)."""

    def metrics(self, step: int, values: dict[str, float]) -> None: ...

    def grid(self, name: str, images: np.ndarray) -> None: ...


@dataclass
class Trainer:
    """One call of train_gan on one rank: what every step reads, and the little it updates.

    Set up once: params and plan; the family and its nets (plain modules, optimizers, EMA, speed wrappers); the
    batches of real faces; grid_z, the fixed latents of the per-epoch grids; this process's place (dist_info); where
    checkpoints go (paths); the speed options in force; the checkpoints' signature (rank 0; None elsewhere) and
    fingerprint (pipeline/train/fingerprint.py); the step this call starts from and the training seconds before it
    (both 0 for a fresh start); the sync publisher (rank 0 with train.sync, else None); the time budget (or None).
    Updated as it trains: t_start (when the first step began) and last_losses (the latest synced losses, which the
    summary reports).
    """

    params: TrainParams
    plan: Plan
    family: Family
    nets: Nets
    batches: FaceBatches
    grid_z: torch.Tensor
    dist_info: DistInfo
    paths: TrainPaths
    speed: SpeedSettings
    signature: dict[str, Any] | None
    fingerprint: dict[str, Any]
    start_step: int = 0
    wall_before: float = 0.0
    publisher: Publisher | None = None
    snapshots: Snapshots | None = None  # train.snapshot_kimg > 0: the scored snapshots (pipeline/train/snapshots.py)
    budget: Budget | None = None
    t_start: float = 0.0
    last_losses: dict[str, float] = field(default_factory=lambda: {"loss_d": float("nan"), "loss_g": float("nan")})


@dataclass
class _Setup:
    """What train_gan builds before it knows where it starts."""

    plan: Plan
    family: Family
    nets: Nets
    speed: SpeedSettings
    fingerprint: dict[str, Any]


def train_gan(
    faces: np.ndarray,
    params: TrainParams,
    paths: TrainPaths,
    dist_info: DistInfo,
    make_log: Callable[[int], TrainLog] | None = None,
    make_scorer: Callable[[torch.device], SnapshotScorer] | None = None,
    budget: Budget | None = None,
) -> dict[str, Any]:
    """Train (or resume, or find finished) and return the training's summary (what metrics/train.json holds).

    make_log(start_step) is called on rank 0 only when training actually runs: start_step 0 means a fresh start
    (clear old curves), more means a resumed one (keep curves up to that step). make_scorer(device) likewise, with
    train.snapshot_kimg > 0: what scores the snapshots (pipeline.train.snapshots). With a budget the training may
    stop early: then the summary has "stopped" (pipeline.train.budget.stopped_summary) and no generator is written.
    """
    check_faces(faces)
    setup = _build(faces, params, dist_info)
    with resumed(faces, params, setup.plan, paths, dist_info, setup.fingerprint) as start:
        start_step, wall_before = restore(start.state, setup.nets) if start.state is not None else (0, 0.0)
        if start.state is not None and start.state.get("summary") is not None and (
            start_step == setup.plan.total_steps or stopped_early(start.state, params.patience)
        ):
            return _finished(start, start_step, setup, paths, dist_info)
        if start.state is not None:
            _log_resume(start, start_step, setup, paths, dist_info)
        trainer = _trainer(faces, params, paths, dist_info, setup, start, start_step, wall_before)
        trainer.snapshots = Snapshots.begin(params, setup.plan, start.state, dist_info, make_scorer, paths.best,
                                            setup.family.config)  # fmt: skip
        trainer.budget = budget
        train_log = make_log(start_step) if (make_log is not None and dist_info.is_main) else None
        return _train(trainer, train_log)


def _build(faces: np.ndarray, params: TrainParams, dist_info: DistInfo) -> _Setup:
    """The plan, the family's freshly initialised nets (seeded), the speed options and this setup's fingerprint."""
    plan = plan_steps(params, len(faces), dist_info.world_size)
    device = dist_info.device
    configure_backends(params, device.type == "cuda")
    speed = resolve_speed(params, device)
    family = family_for(params, faces.shape[1], plan.images_per_step)
    seed_everything(derive_seed(params.seed, INIT))
    g_raw, d_raw = family.build()
    g_raw.to(device)
    d_raw.to(device)
    guard_batchnorm(g_raw, device)  # MPS: contiguous inputs before BatchNorm (the EMA copy below inherits it)
    guard_batchnorm(d_raw, device)
    opt_g, opt_d = family.optimizers(g_raw, d_raw, fused=speed.fused_adam or None)
    nets = Nets(g_raw, d_raw, opt_g, opt_d, family.ema(g_raw))
    return _Setup(plan, family, nets, speed, fingerprint(device, dist_info.world_size, params.deterministic))


def _finished(start: Start, step: int, setup: _Setup, paths: TrainPaths, dist_info: DistInfo) -> dict[str, Any]:
    """The checkpoint holds the finished training: make sure generator.pt and the synced copy have it too."""
    if dist_info.is_main:
        ensure_generator(paths.generator, setup.nets.sampler, setup.family.config)
        keep_best_file(paths.best, paths.generator, saved_best(start.state), setup.family.config)
    log.info("training already finished at step %d: nothing to do", step)
    if start.publisher is not None and (start.publisher.folder.newest_step or 0) < step:
        start.publisher.publish(paths.checkpoint, step)  # its last publish failed: once more now
    return dict(start.state["summary"])


def _log_resume(start: Start, step: int, setup: _Setup, paths: TrainPaths, dist_info: DistInfo) -> None:
    log.info("resuming from step %d of %d (%s)", step, setup.plan.total_steps, paths.checkpoint)
    saved = start.state.get("fingerprint")
    differs = fingerprint_differences(saved, setup.fingerprint) if saved else []
    if differs and dist_info.is_main:
        log.warning("the checkpoint was written on another setup (%s): training continues, but will not be "
                    "bit-identical to an uninterrupted run", "; ".join(differs))  # fmt: skip


def _trainer(
    faces: np.ndarray, params: TrainParams, paths: TrainPaths, dist_info: DistInfo, setup: _Setup, start: Start,
    start_step: int, wall_before: float,
) -> Trainer:  # fmt: skip
    """Wrap the restored nets for speed, and set up the batches and the grid's latents."""
    device = dist_info.device
    wrap_for_speed(setup.nets, setup.speed, dist_info)
    batches = FaceBatches(
        faces, device, params.batch_size, dist_info.rank, dist_info.world_size, params.seed,
        channels_last=setup.speed.channels_last,
    )  # fmt: skip
    grid_z = torch.randn(params.grid_size, params.z_dim, generator=seeded_generator(derive_seed(params.seed, GRID)))
    return Trainer(params, setup.plan, setup.family, setup.nets, batches, grid_z.to(device), dist_info, paths,
                   setup.speed, start.signature, setup.fingerprint, start_step, wall_before,
                   start.publisher)  # fmt: skip


def _train(trainer: Trainer, train_log: TrainLog | None) -> dict[str, Any]:
    """Every remaining step; the summary."""
    plan, dist_info = trainer.plan, trainer.dist_info
    bar = (
        progress(
            total=plan.total_steps * plan.images_per_step,
            initial=trainer.start_step * plan.images_per_step,
            desc="train",
            unit="img",
            unit_scale=True,
        )  # fmt: skip
        if dist_info.is_main
        else None
    )
    meter = Meter(trainer.family.logged, dist_info.device)
    trainer.t_start = time.perf_counter()
    summary: dict[str, Any] = {}
    with bar if bar is not None else contextlib.nullcontext():
        for step in range(trainer.start_step, plan.total_steps):
            meter.add(_train_step(trainer, step))
            if bar is not None:
                bar.update(plan.images_per_step)
            summary = _after_step(trainer, step + 1, meter, train_log, bar) or summary
            if trainer.snapshots is not None and trainer.snapshots.stopped:
                break  # train.patience ran out: this step's checkpoint holds the summary
            if trainer.budget is not None and step + 1 < plan.total_steps and trainer.budget.due(dist_info):
                return _stop_at_budget(trainer, step + 1)
    if train_log is not None:
        train_log.grid("final", _grid(trainer.nets, trainer.grid_z))
    if dist_info.is_main:
        # while the last upload runs
        save_generator(trainer.paths.generator, trainer.nets.sampler, trainer.family.config)
        best = trainer.snapshots.best if trainer.snapshots is not None else None
        keep_best_file(trainer.paths.best, trainer.paths.generator, best, trainer.family.config)
    return summary


def _train_step(trainer: Trainer, step: int) -> dict[str, torch.Tensor]:
    """n_critic critic updates and one generator update; the losses (and penalties) as tensors, unsynced."""
    p, plan, nets, family = trainer.params, trainer.plan, trainer.nets, trainer.family
    rank, device = trainer.dist_info.rank, trainer.dist_info.device
    values = family.apply_schedule(nets, step)
    epoch, step_in_epoch = divmod(step, plan.steps_per_epoch)
    noise = seeded_generator(derive_seed(p.seed, NOISE, step, rank), device)
    augment = augmentation(p.augment, p.seed, step, rank, device)
    penalties: dict[str, list[torch.Tensor]] = {}
    for k in range(p.n_critic):
        real = trainer.batches.get(epoch, step_in_epoch * p.n_critic + k)
        if p.flip:
            real = random_flip(real, p.seed, step, k, rank, trainer.dist_info.world_size)
        z = torch.randn(plan.per_rank, p.z_dim, device=device, generator=noise)
        keep_graph = p.reuse_fake and k == p.n_critic - 1
        fake, loss_d, found = family.critic_step(nets, real, z, noise, values.gamma, step * p.n_critic + k,
                                                 keep_graph, augment)  # fmt: skip
        for name, value in found.items():
            penalties.setdefault(name, []).append(value)
    z = None if p.reuse_fake else torch.randn(plan.per_rank, p.z_dim, device=device, generator=noise)
    loss_g = family.generator_step(nets, fake if p.reuse_fake else None, real, z, augment)
    if nets.ema is not None:
        nets.ema.update(nets.g, step)
    return {"loss_d": loss_d, "loss_g": loss_g, **{k: torch.stack(v).mean() for k, v in penalties.items()}}


def _after_step(trainer: Trainer, done: int, meter: Meter, train_log: TrainLog | None, bar: Any) -> dict | None:
    """Log, grid and checkpoint when due; the summary when this was the last step."""
    plan, p = trainer.plan, trainer.params
    epoch_end = done % plan.steps_per_epoch == 0
    checkpoint_due = done % p.checkpoint_every == 0 or done == plan.total_steps
    if done % p.log_every == 0 or epoch_end or checkpoint_due:
        values, steps_per_s = meter.sync(trainer.dist_info, done, trainer.paths.checkpoint)
        trainer.last_losses = {"loss_d": values["loss_d"], "loss_g": values["loss_g"]}
        if bar is not None:
            bar.set_postfix(loss_d=f"{values['loss_d']:.3g}", loss_g=f"{values['loss_g']:.3g}")
        if train_log is not None:
            train_log.metrics(done, {**values, **_scheduled(trainer, done - 1), "epoch": done / plan.steps_per_epoch,
                                     "images_per_s": steps_per_s * plan.images_per_step})  # fmt: skip
    if epoch_end and train_log is not None:
        train_log.grid(f"epoch_{done // plan.steps_per_epoch:03d}", _grid(trainer.nets, trainer.grid_z))
    if trainer.snapshots is not None and trainer.snapshots.due(done):
        trainer.snapshots.take(trainer.nets, done, train_log)  # before the checkpoint: it holds the history
        checkpoint_due = checkpoint_due or trainer.snapshots.stopped
    if not checkpoint_due:
        return None
    return _checkpoint(trainer, done)


def _scheduled(trainer: Trainer, step: int) -> dict[str, float]:
    """The curves of the schedules: lr always, gamma when the penalties are on."""
    values = trainer.family.schedule(step)
    curves = {"lr_g": values.lr_g, "lr_d": values.lr_d}
    if trainer.params.gamma > 0:
        curves["gamma"] = values.gamma
    if trainer.params.beta2_end is not None:
        curves["beta2"] = values.beta2
    return curves


def _checkpoint(trainer: Trainer, done: int) -> dict[str, Any] | None:
    """Check the weights (finite, equal on every rank), write the checkpoint; the summary at the last step."""
    nets, plan = trainer.nets, trainer.plan
    check_finite_weights(done, trainer.paths.checkpoint, nets.g, nets.d)
    check_ranks_in_sync(trainer.dist_info, done, nets.g, nets.d, nets.ema)
    run_s = time.perf_counter() - trainer.t_start
    snapshots = trainer.snapshots
    final = done == plan.total_steps or (snapshots is not None and snapshots.stopped)
    summary = _summary(trainer, done, run_s) if final else None
    if trainer.dist_info.is_main:
        state = checkpoint_state(trainer.signature, done, plan, nets, trainer.wall_before + run_s, summary)
        state["fingerprint"] = trainer.fingerprint
        state["images_seen"] = done * plan.images_per_step  # with wall_s: how far the run got, in its own units
        if snapshots is not None:
            state["snapshots"] = snapshots.state()
        save_checkpoint(trainer.paths.checkpoint, state)
        if trainer.publisher is not None:
            trainer.publisher.publish(trainer.paths.checkpoint, done)  # at once unless the last upload is unfinished
    return summary


def _stop_at_budget(trainer: Trainer, done: int) -> dict[str, Any]:
    """The budget is spent: a checkpoint at this step (unless one was just written), and the summary so far."""
    if done % trainer.params.checkpoint_every:
        _checkpoint(trainer, done)
    summary = _summary(trainer, done, time.perf_counter() - trainer.t_start)
    log.info("time budget of %g min reached after step %d of %d", trainer.budget.max_minutes, done,
             trainer.plan.total_steps)  # fmt: skip
    return stopped_summary(summary, trainer.budget, trainer.plan.total_steps)


@torch.no_grad()
def _grid(nets: Nets, z: torch.Tensor) -> np.ndarray:
    model = nets.sampler
    was_training = model.training
    model.eval()
    with nets.autocast():
        images = model(z).float()
    model.train(was_training)
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _summary(trainer: Trainer, steps: int, run_s: float) -> dict[str, Any]:
    """metrics/train.json: the finished training; run_s is this call's seconds of training."""
    plan, dist_info = trainer.plan, trainer.dist_info
    snapshots = {"snapshots": trainer.snapshots.summary()} if trainer.snapshots is not None else {}
    return {
        "steps": steps,
        "epochs": steps / plan.steps_per_epoch,
        "images_seen": steps * plan.images_per_step,
        "images_per_s": (steps - trainer.start_step) * plan.images_per_step / max(run_s, 1e-9),
        "loss_d": trainer.last_losses["loss_d"],
        "loss_g": trainer.last_losses["loss_g"],
        "wall_s": trainer.wall_before + run_s,
        "resumed_from_step": trainer.start_step,
        "device": describe(dist_info.device),
        "world_size": dist_info.world_size,
        "torch": str(torch.__version__),
        "loss": trainer.params.loss,
        "generator_sha256": weights_digest(trainer.nets.sampler),
        "speed": trainer.speed.as_dict(),  # which speed options ran (metrics/train.json)
        **snapshots,
    }
