"""Train, calibrate and evaluate the anime-face detector from an array of real faces.

Usage:
    from pipeline.metrics.detector.training import fit_detector
    result = fit_detector(faces, params.detector, device=resolve_device(params.device))  # faces: uint8 (N, H, W, 3)
    result.model, result.threshold, result.metrics, result.meta

Three disjoint parts of the faces, from a permutation seeded by detector.seed:
- holdout (detector.holdout of all faces): never seen in training or calibration; the reported recall and
  false-positive rates come from these faces and negatives made from them;
- calibration (detector.calibration of all faces): not trained on; the threshold is the highest one that still
  finds detector.target_recall of these faces (unaltered, as detect() sees a real face);
- train: the rest, at most detector.max_train_faces of it (0: all).
Training fine-tunes the pretrained O-Net on batches of half jittered real faces, half negatives of uniformly drawn
kinds (pipeline/metrics/detector/data.py), binary cross-entropy, Adam with a cosine-decayed learning rate. Every random
draw comes from detector.seed, so the same seed and faces give the same weights on CPU.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.core.config import DetectorParams
from pipeline.core.device import describe
from pipeline.core.errors import UserError
from pipeline.core.progress import progress
from pipeline.metrics.detector.data import (
    MILD_BLUR_SIGMA,
    NEGATIVE_KINDS,
    blurred_faces,
    clean_faces,
    jittered_faces,
    mixed_negatives,
    negatives,
    to_work,
)
from pipeline.metrics.detector.model import INPUT_SIZE, FaceClassifier, face_probabilities

log = logging.getLogger(__name__)

EVAL_CHUNK = 1024  # faces turned into evaluation images at a time (bounds memory on large datasets)


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    calibration: np.ndarray
    holdout: np.ndarray

    def digest(self) -> str:
        h = hashlib.sha256()
        for part in (self.train, self.calibration, self.holdout):
            h.update(np.asarray(part, dtype="<i8").tobytes())
            h.update(b"|")
        return h.hexdigest()


@dataclass
class DetectorResult:
    model: FaceClassifier
    threshold: float
    metrics: dict[str, Any]
    meta: dict[str, Any]
    split: Split


def split_faces(n: int, p: DetectorParams) -> Split:
    """Disjoint sorted index sets; each part has at least one face or UserError."""
    order = np.random.default_rng([p.seed, 1]).permutation(n)
    n_hold, n_cal = round(n * p.holdout), round(n * p.calibration)
    hold, cal, train = order[:n_hold], order[n_hold : n_hold + n_cal], order[n_hold + n_cal :]
    if p.max_train_faces:
        train = train[: p.max_train_faces]
    if min(len(hold), len(cal), len(train)) == 0:
        raise UserError(
            f"detector: {n} faces leave an empty part (holdout {len(hold)}, calibration {len(cal)}, "
            f"train {len(train)}): use more faces or change detector.holdout / detector.calibration"
        )
    return Split(np.sort(train), np.sort(cal), np.sort(hold))


def choose_threshold(face_scores: np.ndarray, target_recall: float) -> float:
    """The highest threshold t with mean(face_scores >= t) >= target_recall."""
    ranked = np.sort(face_scores)
    k = int(np.floor((1.0 - target_recall) * len(ranked) + 1e-9))
    return float(ranked[min(k, len(ranked) - 1)])


def train_classifier(
    faces: np.ndarray, train_idx: np.ndarray, p: DetectorParams, device: torch.device
) -> FaceClassifier:
    torch.manual_seed(p.seed)
    rng = np.random.default_rng([p.seed, 2])
    model = FaceClassifier(pretrained=True).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=p.lr)
    half = max(1, p.batch_size // 2)
    steps_per_epoch = -(-len(train_idx) // half)
    total = steps_per_epoch * p.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + np.cos(np.pi * min(s, total) / total)))
    labels = torch.cat([torch.ones(half), torch.zeros(half)]).to(device)
    with progress(total=total, desc="detector", unit="step") as bar:
        for _ in range(p.epochs):
            order = rng.permutation(train_idx)
            for s in range(steps_per_epoch):
                pos_idx = order[s * half : (s + 1) * half]
                if len(pos_idx) < half:  # last short batch: top up from the start, keeps batches balanced
                    pos_idx = np.concatenate([pos_idx, order[: half - len(pos_idx)]])
                neg_idx = rng.choice(train_idx, half)
                pos = jittered_faces(to_work(faces[np.sort(pos_idx)]), rng)
                neg, _ = mixed_negatives(to_work(faces[np.sort(neg_idx)]), rng)
                x = torch.cat([pos, neg]).to(device)
                loss = F.binary_cross_entropy_with_logits(model(x), labels)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    return model.eval()


def evaluation_sets(faces: np.ndarray, idx: np.ndarray, seed: int) -> Iterator[dict[str, torch.Tensor]]:
    """The evaluation sets made from faces[idx], chunk by chunk: real faces as they are ("faces"), jittered faces,
    mildly blurred faces, and one negative of each kind per face; float (n, 3, 48, 48) 0..255 each.
    Deterministic in (seed, idx)."""
    rng = np.random.default_rng([seed, 3])
    for start in range(0, len(idx), EVAL_CHUNK):
        work = to_work(faces[idx[start : start + EVAL_CHUNK]])
        made = {
            "faces": clean_faces(work),
            "jittered": jittered_faces(work, rng),
            "mild_blur": blurred_faces(work, np.full(len(work), MILD_BLUR_SIGMA)),
        }
        made.update({kind: negatives(kind, work, rng) for kind in NEGATIVE_KINDS})
        yield made


def score_sets(model: FaceClassifier, faces: np.ndarray, idx: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Face probabilities of every evaluation set (see evaluation_sets)."""
    sets: dict[str, list[np.ndarray]] = {}
    for made in evaluation_sets(faces, idx, seed):
        for name, images in made.items():
            sets.setdefault(name, []).append(face_probabilities(model, images))
    return {name: np.concatenate(parts) for name, parts in sets.items()}


def rates(scores: dict[str, np.ndarray], threshold: float) -> dict[str, Any]:
    found = {name: round(float(np.mean(s >= threshold)), 6) for name, s in scores.items()}
    return {
        "recall": found["faces"],
        "recall_jittered": found["jittered"],
        "recall_mild_blur": found["mild_blur"],
        "fp_rate": {kind: found[kind] for kind in NEGATIVE_KINDS},
        "fp_rate_max": max(found[kind] for kind in NEGATIVE_KINDS),
    }


def fit_detector(faces: np.ndarray, p: DetectorParams, device: torch.device) -> DetectorResult:
    if faces.dtype != np.uint8 or faces.ndim != 4 or faces.shape[-1] != 3:
        raise UserError(f"detector: expected uint8 faces (N, H, W, 3), got {faces.dtype} {tuple(faces.shape)}")
    split = split_faces(len(faces), p)
    log.info(
        "detector: %d train, %d calibration, %d held-out faces on %s",
        len(split.train),
        len(split.calibration),
        len(split.holdout),
        device,
    )
    started = time.perf_counter()
    model = train_classifier(faces, split.train, p, device)
    train_seconds = time.perf_counter() - started
    calibration = score_sets(model, faces, split.calibration, p.seed)
    threshold = choose_threshold(calibration["faces"], p.target_recall)
    held_out = rates(score_sets(model, faces, split.holdout, p.seed + 1), threshold)
    log.info(
        "detector: threshold %.4f, held-out recall %.4f, worst FP %.4f",
        threshold,
        held_out["recall"],
        held_out["fp_rate_max"],
    )
    metrics = {
        **held_out,
        "threshold": round(threshold, 6),
        "calibration": rates(calibration, threshold),
        "train_seconds": round(train_seconds, 1),
        "faces": {"train": len(split.train), "calibration": len(split.calibration), "holdout": len(split.holdout)},
        "device": describe(device),
    }
    meta = {
        "threshold": threshold,
        "seed": p.seed,
        "target_recall": p.target_recall,
        "input_size": INPUT_SIZE,
        "split_sha256": split.digest(),
        "faces_shape": list(faces.shape),
        "negative_kinds": list(NEGATIVE_KINDS),
        "torch": torch.__version__,
    }
    return DetectorResult(model, threshold, metrics, meta, split)
