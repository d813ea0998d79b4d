"""Snapshots scored while training: when they are due, what they draw, their history, the best kept, patience.

Usage:
    from pipeline.train.snapshots import Snapshots, SnapshotScorer, stopped_early, keep_best_file
    snapshots = Snapshots.begin(params, plan, state, dist_info, make_scorer, best_path, config)  # None when off
    if snapshots.due(done):
        snapshots.take(nets, done, train_log)   # every rank; rank 0 scores; snapshots.stopped: patience ran out
    state["snapshots"] = snapshots.state()     # the checkpoint's: history and best survive resume and train.sync
    summary["snapshots"] = snapshots.summary() # metrics/train.json
    stopped_early(checkpoint_state, patience)  # the checkpoint of a run that patience ended: it is finished
    keep_best_file(best_path, generator_path, saved_best(checkpoint_state), config)   # best.pt, or generator's copy

A snapshot is due each time the real images seen pass a multiple of train.snapshot_kimg thousand. The run's end is
not one unless it falls on such a multiple, so a longer run continues a shorter one's history exactly. The EMA
generator (Nets.sampler) draws train.snapshot_count images from latents fixed for the run (image i's own stream,
pipeline.train.latents, under a seed derived from train.seed for snapshots alone), in fixed chunks, in eval mode
and the training's autocast; a scorer scores them. The scorer (pipeline.metrics.snapshot_scorer: the stage passes
a factory in, as this room does not import the metrics room) is loaded once per run on rank 0, when training
really starts. Loading it and taking a snapshot save and restore every global RNG, so the training draws what it
would draw without snapshots, and a resumed run what an uninterrupted one draws: the history comes out the same.

The best snapshot on train.select_by (strictly better than every earlier one, in the direction the metric registry
declares) is kept: its weights and record in the checkpoint and in best.pt (pipeline.train.best_file); older
snapshots are not kept. With train.patience P > 0 the run stops at the P-th snapshot after the best that did not
beat it: the checkpoint is written there holding the summary, so a rerun finds the run finished (unless patience
was raised, then it trains on). Resuming with other snapshot settings than the checkpoint's history was scored
with is refused: one history, one set of settings.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from pipeline.core.config import TrainParams
from pipeline.core.distributed import DistInfo
from pipeline.core.errors import UserError
from pipeline.core.seeding import SNAPSHOT, capture_rng_state, derive_seed, restore_rng_state
from pipeline.train.best_file import copy_last, write_best
from pipeline.train.families import Nets
from pipeline.train.generator_file import unwrap
from pipeline.train.latents import latents
from pipeline.train.plan import Plan
from pipeline.train.sampling import to_uint8

log = logging.getLogger(__name__)

CHUNK = 250  # images per generator call: fixed, so a snapshot's images never depend on a tunable


class SnapshotScorer(Protocol):
    """What scores a snapshot (pipeline.metrics.snapshot_scorer.RegistryScorer)."""

    def better(self, name: str) -> str: ...  # "lower" or "higher": the metric's direction

    def __call__(self, images: np.ndarray) -> dict[str, float]: ...  # uint8 (N, H, W, 3) -> {metric: value}

    def describe(self) -> dict[str, Any]: ...  # what the scores depend on, for metrics/train.json


def settings_of(params: TrainParams) -> dict[str, Any]:
    """The settings a history is scored under: a resumed run must keep them."""
    return {"snapshot_kimg": params.snapshot_kimg, "snapshot_count": params.snapshot_count,
            "snapshot_metrics": list(params.snapshot_metrics), "select_by": params.select_by}  # fmt: skip


def beats(value: float | None, best: float | None, better: str) -> bool:
    if value is None or not math.isfinite(value):
        return False
    return best is None or (value < best if better == "lower" else value > best)


@dataclass
class Snapshots:
    params: TrainParams
    images_per_step: int
    every: int  # real images between snapshots
    dist_info: DistInfo
    best_path: Path | None
    config: Any  # the family's Config, for best.pt
    better: str = "lower"
    scorer: SnapshotScorer | None = None  # rank 0 only
    z: torch.Tensor | None = None  # the fixed latents (rank 0 only)
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None  # {"record": {...}, "G": state_dict}
    stopped: bool = False
    seconds: float = 0.0  # this call's scoring time

    @classmethod
    def begin(
        cls, params: TrainParams, plan: Plan, state: dict[str, Any] | None, dist_info: DistInfo,
        make_scorer: Callable[[torch.device], SnapshotScorer] | None, best_path: Path | None, config: Any,
    ) -> Snapshots | None:  # fmt: skip
        """The run's snapshots (None when train.snapshot_kimg is 0), continuing the checkpoint's history."""
        if params.snapshot_kimg == 0:
            return None
        every = max(1, round(params.snapshot_kimg * 1000))
        snaps = cls(params, plan.images_per_step, every, dist_info, best_path, config)
        snaps._continue(state)
        if dist_info.is_main:
            if make_scorer is None:
                raise ValueError("train.snapshot_kimg > 0 needs a scorer: pass make_scorer to train_gan")
            saved = capture_rng_state()  # loading may initialise networks from the global RNG
            try:
                snaps.scorer = make_scorer(dist_info.device)
            finally:
                restore_rng_state(saved)
            snaps.better = snaps.scorer.better(params.select_by)
            seed = derive_seed(params.seed, SNAPSHOT)
            snaps.z = latents(seed, 0, 0, params.snapshot_count, params.z_dim).to(dist_info.device)
            if snaps.best is not None and best_path is not None:  # a synced checkpoint's best, on a new machine
                write_best(best_path, snaps.best["G"], config, snaps.best["record"])
        return snaps

    def _continue(self, state: dict[str, Any] | None) -> None:
        saved = (state or {}).get("snapshots")
        if saved is None:
            if state is not None:
                log.info("snapshots start at step %d: the checkpoint was trained without them", state["step"])
            return
        now = settings_of(self.params)
        if saved["settings"] != now:
            diffs = [f"train.{k}: {v!r} -> {now[k]!r}" for k, v in saved["settings"].items() if now[k] != v]
            raise UserError(f"the checkpoint's snapshots were scored with other settings ({'; '.join(diffs)}): set "
                            "them back to finish this run, or delete the checkpoint to start over")  # fmt: skip
        self.history, self.best, self.better = list(saved["history"]), saved["best"], saved["better"]

    def due(self, done: int) -> bool:
        """Whether the images seen after `done` steps passed a multiple of the interval."""
        ips = self.images_per_step
        return done * ips // self.every > (done - 1) * ips // self.every

    def take(self, nets: Nets, done: int, train_log: Any) -> None:
        """Draw, score, keep the best, log; then every rank learns whether patience ran out (self.stopped)."""
        stop = False
        if self.scorer is not None:
            t0 = time.perf_counter()
            rng = capture_rng_state()
            try:
                images = self._draw(nets)
                scores = self.scorer(images)
            finally:
                restore_rng_state(rng)
            entry = self._record(done, scores, nets)
            self.seconds += time.perf_counter() - t0
            log.info("snapshot at step %d (%.4g kimg): %s in %.1f s", done, entry["kimg"],
                     ", ".join(f"{k} {v:.4g}" for k, v in scores.items()), time.perf_counter() - t0)  # fmt: skip
            if train_log is not None:
                train_log.metrics(done, {f"snapshot/{k}": v for k, v in scores.items()})
                train_log.grid(f"snapshot_{done:07d}", images[: self.params.grid_size])
            stop = self._patience_ran_out(done)
        self.stopped = bool(self.dist_info.broadcast_object(stop))

    @torch.no_grad()
    def _draw(self, nets: Nets) -> np.ndarray:
        model = nets.sampler
        was_training = model.training
        model.eval()
        with nets.autocast():
            parts = [to_uint8(model(z).float()) for z in self.z.split(CHUNK)]
        model.train(was_training)
        return np.concatenate(parts)

    def _record(self, done: int, scores: dict[str, float], nets: Nets) -> dict[str, Any]:
        """Append the history's entry; keep the snapshot (and write best.pt) when it beats the best so far."""
        name = self.params.select_by
        kimg = done * self.images_per_step / 1000
        best_value = self.best["record"]["scores"].get(name) if self.best is not None else None
        if beats(scores.get(name), best_value, self.better):
            record = {"step": done, "kimg": kimg, "select_by": name, "better": self.better, "scores": dict(scores)}
            weights = {k: v.detach().to("cpu", copy=True) for k, v in unwrap(nets.sampler).state_dict().items()}
            self.best = {"record": record, "G": weights}
            if self.best_path is not None:
                write_best(self.best_path, weights, self.config, record)
        best = self.best["record"] if self.best is not None else None
        entry = {"step": done, "kimg": kimg, **scores, "best_step": best["step"] if best else None,
                 f"best_{name}": best["scores"][name] if best else None}  # fmt: skip
        self.history.append(entry)
        return entry

    def _patience_ran_out(self, done: int) -> bool:
        best = self.best["record"] if self.best is not None else None
        since = snapshots_since(self.history, best["step"] if best else 0)
        patience = self.params.patience
        if not patience or since < patience:
            return False
        where = f"its best {best['scores'][best['select_by']]:.4g} at step {best['step']}" if best else "any value"
        log.info("train.patience=%d: stopping early at step %d: %s has not beaten %s for %d snapshots; best.pt "
                 "holds step %s", patience, done, self.params.select_by, where, since,
                 best["step"] if best else "none (the last generator)")  # fmt: skip
        return True

    def state(self) -> dict[str, Any]:
        return {"settings": settings_of(self.params), "better": self.better, "history": list(self.history),
                "best": self.best}  # fmt: skip

    def summary(self) -> dict[str, Any]:
        """metrics/train.json's part: settings, the best, whether patience stopped the run, and the history."""
        best = self.best["record"] if self.best is not None else None
        return {
            **settings_of(self.params), "better": self.better, "patience": self.params.patience,
            "best": None if best is None else {"step": best["step"], "kimg": best["kimg"], **best["scores"]},
            "stopped_early": self.stopped, "count_scored": len(self.history), "history": self.history,
            "scorer": self.scorer.describe() if self.scorer is not None else None, "scoring_s": self.seconds,
        }  # fmt: skip


def snapshots_since(history: list[dict[str, Any]], best_step: int) -> int:
    """The snapshots of history taken after best_step (0: none was best yet): what train.patience counts."""
    return sum(1 for entry in history if entry["step"] > best_step)


def stopped_early(state: dict[str, Any], patience: int) -> bool:
    """Whether this finished checkpoint (it holds a summary) is where patience ends the run: the run is done."""
    saved = state.get("snapshots")
    if not patience or state.get("summary") is None or not saved:
        return False
    for k, entry in enumerate(saved["history"]):  # the first snapshot at which patience runs out, as it trained
        if snapshots_since(saved["history"][: k + 1], entry["best_step"] or 0) >= patience:
            return entry["step"] <= int(state["step"])
    return False


def saved_best(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """The best snapshot a checkpoint's state holds ({"record", "G"}), or None."""
    return ((state or {}).get("snapshots") or {}).get("best")


def keep_best_file(best_path: Path | None, generator: Path, best: dict[str, Any] | None, config: Any) -> None:
    """best.pt from the best snapshot ({"record", "G"}); a copy of generator.pt when there is none."""
    if best_path is None:
        return
    if best is None:
        copy_last(best_path, generator)
    else:
        write_best(best_path, best["G"], config, best["record"])
