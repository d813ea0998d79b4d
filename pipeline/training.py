"""The GAN training loop: resumable, seeded, bit-identical on CPU across interruptions, DDP under torchrun.

Usage:
    from pipeline.training import TrainPaths, train_gan
    summary = train_gan(faces, params.train, TrainPaths(checkpoint=..., generator=...), dist_info,
                        make_log=lambda start_step: DvcLiveTrainLog(...))   # faces: uint8 (N, H, W, 3)
    summary["images_per_s"], summary["loss_d"], summary["steps"]

A step is train.n_critic critic updates (one batch each) and one generator update. An epoch is
(N // batch_size) // n_critic steps, so every batch is full. Batches, latents and the gradient penalty's mixing
weights are drawn from generators seeded by (seed, epoch) or (seed, step, rank): where a run resumes does not
change what it draws, so 2 steps + resume + 2 steps equals 4 steps bit for bit on CPU, and a longer run
(more epochs) continues a finished shorter one exactly.

With train.reuse_fake the generator step scores the fake batch of the last critic step instead of drawing a
new one (the course draws a fresh G(z)); the critic sees that batch detached (the course's D step forgets
detach() and backpropagates into G for nothing), and the critic is frozen during the generator step.
Losses are synchronised every train.log_every steps (one GPU sync, not one per step); a NaN/inf loss or weight
stops the run with UserError before any checkpoint is written, so the last good checkpoint stays.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from pipeline.checkpoint import (
    load_checkpoint,
    remove_stale_temporaries,
    run_signature,
    save_checkpoint,
    signature_differences,
)
from pipeline.config import TrainParams
from pipeline.distributed import DistInfo
from pipeline.ema import GeneratorEMA
from pipeline.errors import UserError
from pipeline.face_batches import FaceBatches
from pipeline.losses import clip_weights, critic_loss, generator_loss, gradient_penalty
from pipeline.models import Critic, Generator, generator_config, load_generator, save_generator
from pipeline.progress import progress
from pipeline.seeding import (
    GRID,
    INIT,
    NOISE,
    capture_rng_state,
    derive_seed,
    restore_rng_state,
    seed_everything,
    seeded_generator,
)
from pipeline.speed import SpeedSettings, resolve_speed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainPaths:
    checkpoint: Path
    generator: Path


class TrainLog(Protocol):
    """Where rank 0 sends curves and grids (pipeline.train_log.DvcLiveTrainLog writes them for DVC)."""

    def metrics(self, step: int, values: dict[str, float]) -> None: ...

    def grid(self, name: str, images: np.ndarray) -> None: ...


@dataclass
class _Plan:
    per_rank: int
    steps_per_epoch: int
    total_steps: int
    images_per_step: int  # real images consumed per step by all ranks together


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
    image_size = faces.shape[1]
    plan = _plan(params, len(faces), dist_info.world_size)
    device = dist_info.device
    on_cuda = device.type == "cuda"
    _configure_backends(params, on_cuda)
    speed = resolve_speed(params, device)

    seed_everything(derive_seed(params.seed, INIT))
    g_raw = Generator(params.z_dim, params.g_features, image_size)
    d_raw = Critic(params.d_features, image_size, params.critic_norm, sigmoid=False, spectral_norm=params.spectral_norm)
    g_raw.to(device)
    d_raw.to(device)
    opt_g, opt_d = _optimizer(params, g_raw, params.lr_g, speed), _optimizer(params, d_raw, params.lr_d, speed)
    ema = GeneratorEMA(g_raw, params.ema) if params.ema > 0 else None
    g_config = generator_config(params.model, params.z_dim, params.g_features, image_size)

    state = _load_resumable(faces, params, plan, paths, dist_info, image_size)
    start_step, wall_before = 0, 0.0
    if state is not None:
        g_raw.load_state_dict(state["G"])
        d_raw.load_state_dict(state["D"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        if ema is not None:
            ema.module.load_state_dict(state["G_ema"])
        restore_rng_state(state["rng"])
        start_step, wall_before = int(state["step"]), float(state["wall_s"])
        if start_step == plan.total_steps and state.get("summary") is not None:
            if dist_info.is_main:
                _ensure_generator(paths.generator, ema.module if ema else g_raw, g_config)
            log.info("training already finished at step %d: nothing to do", start_step)
            return dict(state["summary"])
        log.info("resuming from step %d of %d (%s)", start_step, plan.total_steps, paths.checkpoint)
    signature = state["signature"] if state is not None else None

    # speed settings apply to the wrappers only: checkpoints always hold the plain modules' tensors
    if speed.channels_last:
        g_raw.to(memory_format=torch.channels_last)
        d_raw.to(memory_format=torch.channels_last)
        if ema is not None:
            ema.module.to(memory_format=torch.channels_last)
    g_run: nn.Module = g_raw
    d_run: nn.Module = d_raw
    if dist_info.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if on_cuda else None
        g_run, d_run = DDP(g_raw, device_ids=ids), DDP(d_raw, device_ids=ids)
    d_plain: nn.Module = d_raw  # the generator step: frozen critic, no DDP gradient sync needed
    if speed.compile:
        g_run, d_run, d_plain = torch.compile(g_run), torch.compile(d_run), torch.compile(d_raw)
    autocast = speed.autocast

    batches = FaceBatches(
        faces, device, params.batch_size, dist_info.rank, dist_info.world_size, params.seed,
        channels_last=speed.channels_last,
    )  # fmt: skip
    grid_z = torch.randn(params.grid_size, params.z_dim, generator=seeded_generator(derive_seed(params.seed, GRID)))
    grid_z = grid_z.to(device)

    if signature is None and dist_info.is_main:
        signature = run_signature(params, image_size, faces_digest(faces), len(faces))
    train_log = make_log(start_step) if (make_log is not None and dist_info.is_main) else None
    bar = (
        progress(
            total=plan.total_steps * plan.images_per_step, initial=start_step * plan.images_per_step,
            desc="train", unit="img", unit_scale=True,
        )  # fmt: skip
        if dist_info.is_main
        else None
    )

    loss_sums = torch.zeros(3, device=device, dtype=torch.float64)  # loss_d, loss_g, steps
    last_losses = {"loss_d": float("nan"), "loss_g": float("nan")}
    t_start = time.perf_counter()
    t_interval, steps_interval = t_start, 0
    step = start_step
    final_summary: dict[str, Any] = {}
    try:
        for step in range(start_step, plan.total_steps):
            epoch, step_in_epoch = divmod(step, plan.steps_per_epoch)
            noise = seeded_generator(derive_seed(params.seed, NOISE, step, dist_info.rank), device)
            for k in range(params.n_critic):
                real = batches.get(epoch, step_in_epoch * params.n_critic + k)
                z = torch.randn(plan.per_rank, params.z_dim, device=device, generator=noise)
                keep_graph = params.reuse_fake and k == params.n_critic - 1
                with autocast():
                    with contextlib.nullcontext() if keep_graph else torch.no_grad():
                        # float32 like the real batch: under bf16 a bf16 fake made compile build one more critic
                        # graph; autocast casts it back to bf16 for the critic's first conv, exactly
                        fake = g_run(z).float()
                    loss_d = critic_loss(params.loss, d_run(real), d_run(fake.detach()))
                    if params.loss == "wgan-gp":
                        # the plain module: DDP and compiled graphs (AOTAutograd) cannot differentiate twice
                        loss_d = loss_d + params.gp_lambda * gradient_penalty(d_raw, real, fake.detach(), noise)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                if params.loss == "wgan":
                    clip_weights(d_raw, params.clip_value)

            # the generator step needs gradients w.r.t. images only. Under compile the frozen critic is its own graph
            # anyway (its input needs grad), built once in step 1; frozen weights keep weight gradients out of it
            d_raw.requires_grad_(False)
            with autocast():
                if not params.reuse_fake:
                    fake = g_run(torch.randn(plan.per_rank, params.z_dim, device=device, generator=noise)).float()
                loss_g = generator_loss(params.loss, d_plain(fake))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            d_raw.requires_grad_(True)
            if ema is not None:
                ema.update(g_raw, step)

            loss_sums += torch.stack([loss_d.detach().double(), loss_g.detach().double(), loss_sums.new_ones(())])
            steps_interval += 1
            if bar is not None:
                bar.update(plan.images_per_step)

            done = step + 1
            epoch_end = done % plan.steps_per_epoch == 0
            checkpoint_due = done % params.checkpoint_every == 0 or done == plan.total_steps
            if done % params.log_every == 0 or epoch_end or checkpoint_due:
                values = _synced_losses(loss_sums, dist_info, done, paths.checkpoint)
                loss_sums.zero_()
                now = time.perf_counter()
                rate = steps_interval * plan.images_per_step / max(now - t_interval, 1e-9)
                t_interval, steps_interval = now, 0
                last_losses = values
                if bar is not None:
                    bar.set_postfix(loss_d=f"{values['loss_d']:.3g}", loss_g=f"{values['loss_g']:.3g}")
                if train_log is not None:
                    train_log.metrics(done, {**values, "images_per_s": rate, "epoch": done / plan.steps_per_epoch})
            if epoch_end and train_log is not None:
                train_log.grid(f"epoch_{done // plan.steps_per_epoch:03d}", _grid(g_raw, ema, grid_z, autocast))
            if checkpoint_due:
                _check_finite_weights(done, paths.checkpoint, g_raw, d_raw)
                _check_ranks_in_sync(dist_info, done, g_raw, d_raw, ema)
                summary = None
                if done == plan.total_steps:
                    final_summary = summary = _summary(
                        params, plan, dist_info, done, start_step, wall_before + time.perf_counter() - t_start,
                        time.perf_counter() - t_start, last_losses, ema.module if ema is not None else g_raw,
                    )  # fmt: skip
                    summary["speed"] = speed.as_dict()  # which speed options ran (metrics/train.json)
                if dist_info.is_main:
                    wall = wall_before + time.perf_counter() - t_start
                    save_checkpoint(
                        paths.checkpoint,
                        _checkpoint_state(signature, done, plan, g_raw, d_raw, ema, opt_g, opt_d, wall, summary),
                    )
    finally:
        if bar is not None:
            bar.close()

    final = ema.module if ema is not None else g_raw
    if train_log is not None:
        train_log.grid("final", _grid(g_raw, ema, grid_z, autocast))
    if dist_info.is_main:
        save_generator(paths.generator, final, g_config)
    return final_summary


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


def _optimizer(params: TrainParams, module: nn.Module, lr: float, speed: SpeedSettings) -> torch.optim.Optimizer:
    if params.optimizer == "adam":
        return torch.optim.Adam(module.parameters(), lr=lr, betas=tuple(params.betas), fused=speed.fused_adam or None)
    return torch.optim.RMSprop(module.parameters(), lr=lr)


def _load_resumable(
    faces: np.ndarray, params: TrainParams, plan: _Plan, paths: TrainPaths, dist_info: DistInfo, image_size: int
) -> dict[str, Any] | None:
    """Rank 0 reads and vets the checkpoint, every rank gets rank 0's verdict: the state, None, or the error."""
    verdict: tuple[str, Any] = ("none", None)
    if dist_info.is_main:
        try:
            for stale in remove_stale_temporaries(paths.checkpoint):
                log.info("removed %s, left by an interrupted checkpoint write", stale)
            state = load_checkpoint(paths.checkpoint)
            if state is not None:
                current = run_signature(params, image_size, faces_digest(faces), len(faces))
                diffs = signature_differences(state["signature"], current)
                if int(state["step"]) > plan.total_steps:
                    diffs.append(f"steps: the checkpoint has {state['step']}, more than the {plan.total_steps} asked")
                if diffs and params.on_mismatch == "restart":
                    log.warning("%s is from other params (%s): starting over", paths.checkpoint, "; ".join(diffs))
                    state = None
                elif diffs:
                    raise UserError(
                        f"{paths.checkpoint} is from other params ({'; '.join(diffs)}); to start over, delete it "
                        "or set train.on_mismatch=restart"
                    )
            verdict = ("state", state) if state is not None else ("none", None)
        except UserError as e:
            verdict = ("error", str(e))
    kind, value = dist_info.broadcast_object(verdict)
    if kind == "error":
        raise UserError(value)
    return value


def _checkpoint_state(
    signature: dict[str, Any] | None,
    step: int,
    plan: _Plan,
    g: nn.Module,
    d: nn.Module,
    ema: GeneratorEMA | None,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    wall_s: float,
    summary: dict[str, Any] | None,
) -> dict[str, Any]:
    epoch, step_in_epoch = divmod(step, plan.steps_per_epoch)
    return {
        "signature": signature,
        "step": step,
        "epoch": epoch,
        "step_in_epoch": step_in_epoch,  # position in the epoch's permutation: batch step_in_epoch * n_critic
        "G": g.state_dict(),
        "D": d.state_dict(),
        "G_ema": ema.module.state_dict() if ema is not None else None,
        "opt_g": opt_g.state_dict(),
        "opt_d": opt_d.state_dict(),
        "scaler": None,  # bf16 autocast needs no gradient scaler
        "rng": capture_rng_state(),
        "wall_s": wall_s,
        "summary": summary,
        "torch": str(torch.__version__),
    }


def _synced_losses(loss_sums: torch.Tensor, dist_info: DistInfo, step: int, checkpoint: Path) -> dict[str, float]:
    sums = dist_info.all_reduce_sum(loss_sums.clone())
    loss_d, loss_g, n = sums.tolist()
    for name, value in (("loss_d", loss_d), ("loss_g", loss_g)):
        if not np.isfinite(value):
            raise UserError(
                f"training diverged: {name} is {value} by step {step}; {checkpoint} keeps the last good state. "
                "Lower train.lr_d / train.lr_g or change train.loss, then start over"
            )
    return {"loss_d": loss_d / n, "loss_g": loss_g / n}


def weights_digest(*modules: nn.Module) -> str:
    """sha256 of the modules' parameters (names and raw bytes): equal digests, equal weights."""
    h = hashlib.sha256()
    for m in modules:
        for name, p in m.named_parameters():
            h.update(name.encode())
            h.update(p.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _check_ranks_in_sync(
    dist_info: DistInfo, step: int, g: nn.Module, d: nn.Module, ema: GeneratorEMA | None
) -> None:
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
def _grid(g_raw: nn.Module, ema: GeneratorEMA | None, z: torch.Tensor, autocast: Callable) -> np.ndarray:
    model = ema.module if ema is not None else g_raw
    was_training = model.training
    model.eval()
    with autocast():
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
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {
        "steps": steps,
        "epochs": steps / plan.steps_per_epoch,
        "images_seen": steps * plan.images_per_step,
        "images_per_s": (steps - start_step) * plan.images_per_step / max(run_s, 1e-9),
        "loss_d": losses["loss_d"],
        "loss_g": losses["loss_g"],
        "wall_s": wall_s,
        "resumed_from_step": start_step,
        "device": f"{device.type}: {name}",
        "world_size": dist_info.world_size,
        "torch": str(torch.__version__),
        "loss": params.loss,
        "generator_sha256": weights_digest(generator),
    }
