"""Score draws of images with FID, KID and AFD against the cached reference; record what the numbers depend on.

Usage:
    from pipeline.metrics.evaluation import score_draws, provenance, read_image_folder
    metrics = score_draws(draws, backbone, reference, detector, real_images,
                          batch_size=50, kid_subsets=100, kid_subset_size=1000, kid_seed=0)
    metrics["fid"]  # {"mean", "std", "draws": [...]}; the same for "kid" (+ "subset_std") and "afd"
    metrics["afd_real"], metrics["afd_rel"]
    metrics = score_draws(..., prdc=PrdcReference(reference.prdc_features, k=3),
                          copies=CopyCheck(faces, ...), copy_threshold=calibration.threshold,
                          copy_near=calibration.near(), worst=16)
    metrics["precision"], ["recall"], ["density"], ["coverage"], ["copied"]   # the same {"mean", "std", "draws"}
    metrics["copies"]  # draw 0: {"threshold", "near", "flagged": [image indices], "worst": [{image, ...}]}
    metrics["provenance"] = provenance(dataset_sha256=..., backbone=..., detector=..., ...)
    images, bad = read_image_folder(Path("output"), max_pixels=4096 * 4096)   # any folder; bad files listed

`draws` is any iterable of uint8 (N, H, W, 3) arrays, consumed one at a time so only one draw is in memory.
`std` is the sample standard deviation over draws (ddof=1; 0.0 for a single draw): the spread a score moves by when the
same model is sampled again. afd_real is the same detector's rate on real clean faces, and afd_rel = afd / afd_real
(null when the detector finds no real face). Precision, recall, density and coverage (pipeline.metrics.prdc) use the
same features as FID against the reference's cached subset; `copied` is the share of each draw's images closer to a
training face than the copy threshold (pipeline.metrics.copies), and `copies` lists the first
draw's (the submission's) flagged images and the `worst` closest ones.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.core.device import describe
from pipeline.data.clean import Dropped, decode_rgb
from pipeline.metrics.afd import Detector, detection_rate
from pipeline.metrics.copies import CopyCheck, DrawCopies
from pipeline.metrics.fid import fid_of_features
from pipeline.metrics.fid_reference import Reference
from pipeline.metrics.inception import Backbone, extract_features
from pipeline.metrics.kid import KidReference
from pipeline.metrics.prdc import PrdcReference

log = logging.getLogger(__name__)

PRDC_KEYS = ("precision", "recall", "density", "coverage")
PACKAGES = ("torch", "torchvision", "numpy", "scipy", "pillow", "facenet-pytorch", "pytorch-fid")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


def summary(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, np.float64)
    std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return {"mean": float(arr.mean()), "std": std, "draws": [float(v) for v in arr]}


def score_draws(
    draws: Iterable[np.ndarray],
    backbone: Backbone,
    reference: Reference,
    detector: Detector,
    real_images: np.ndarray,
    batch_size: int,
    kid_subsets: int,
    kid_subset_size: int,
    kid_seed: int,
    prdc: PrdcReference | None = None,
    copies: CopyCheck | None = None,
    copy_threshold: float = 0.0,
    copy_near: float = 0.0,
    worst: int = 0,
    afd_real: float | None = None,
) -> dict[str, Any]:
    """`afd_real`: the detector's rate on the real faces when already known (the detector stage's cache): then
    `real_images` are not scored again."""
    kid_reference = KidReference(reference.kid_features, kid_subsets, kid_subset_size, kid_seed)
    fids, kids, kid_spread, afds = [], [], [], []
    prdcs: dict[str, list[float]] = {key: [] for key in PRDC_KEYS}
    copied: list[float] = []
    first_copies: DrawCopies | None = None
    for d, images in enumerate(draws):
        feats = extract_features(backbone, images, batch_size)
        fids.append(fid_of_features(feats, reference.mean, reference.cov))
        kid_mean, kid_std = kid_reference.score(feats)
        kids.append(kid_mean)
        kid_spread.append(kid_std)
        afds.append(detection_rate(detector, images))
        log.info("draw %d: %d images, FID %.4f, KID %.6f, AFD %.4f", d, len(images), fids[-1], kids[-1], afds[-1])
        if prdc is not None and len(images) > prdc.k:
            for key, value in prdc.score(feats).items():
                prdcs[key].append(value)
            log.info("draw %d: %s", d, ", ".join(f"{k} {v[-1]:.4f}" for k, v in prdcs.items()))
        if copies is not None:
            found = copies.check(images, feats, copy_threshold, copy_near)
            copied.append(found.fraction)
            if first_copies is None:
                first_copies = found
            log.info("draw %d: %d of %d images copy a training face", d, len(found.flagged), len(images))
    if not fids:
        raise ValueError("no draws to score")
    if prdc is not None and not prdcs["precision"]:
        log.warning("precision/recall skipped: a draw needs more than k=%d images", prdc.k)
    if afd_real is None:
        afd_real = detection_rate(detector, real_images) if len(real_images) else None
    afd = summary(afds)
    if afd_real == 0:
        log.warning("the detector found no face in %d real images: afd_rel is undefined", len(real_images))
    out = {
        "fid": summary(fids),
        "kid": {**summary(kids), "subset_std": [float(s) for s in kid_spread]},
        "afd": afd,
        "afd_real": afd_real,
        "afd_rel": afd["mean"] / afd_real if afd_real else None,
    }
    out.update({key: summary(values) for key, values in prdcs.items() if values})
    if first_copies is not None:
        out["copied"] = summary(copied)
        out["copies"] = {
            "threshold": copy_threshold,
            "near": first_copies.near,
            "flagged": [int(i) for i in first_copies.flagged],
            "worst": first_copies.worst(worst),
        }
    return out


def provenance(
    dataset_sha256: str,
    backbone: Backbone,
    detector: Detector,
    image_count: int,
    repeats: int,
    reference: Reference,
    jpeg_quality: int | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out = {
        "dataset_sha256": dataset_sha256,
        "fid_backbone": backbone.name,
        "weights_sha256": backbone.weights_sha256,
        "detector": detector.describe(),
        "image_count": image_count,
        "repeats": repeats,
        "reference_count": reference.meta.get("count"),
        "kid_reference_pool": reference.meta.get("kid_pool"),
        "jpeg_quality": jpeg_quality,
        "packages": package_versions(),
        "device": describe(backbone.device),
        "inception": backbone.path(),
        "detector_speed": detector_speed(detector),
    }
    if backbone.calibration_seed is not None:
        out["calibration_seed"] = backbone.calibration_seed
    return {**out, **(extra or {})}


def detector_speed(detector: Detector) -> dict[str, bool]:
    """Which eval speed options the detector's forward passes ran with (a detector without `speed`: none)."""
    speed = getattr(detector, "speed", None)
    return {name: bool(speed is not None and getattr(speed, name)) for name in ("bf16", "compile", "channels_last")}


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def read_image_folder(folder: Path, max_pixels: int) -> tuple[np.ndarray, list[str]]:
    """Every image file in `folder` (numeric-aware name order) as uint8 (N, H, W, 3), and the names that failed.

    Files are decoded as the clean stage decodes them (pipeline.data.clean.decode_rgb): one larger than max_pixels
    (data.max_pixels) is refused from its header and listed as bad, like an unreadable one. Images whose size
    differs from the most common size among them are resized to it (bicubic), so a folder of mixed sizes is
    still scored, and one large image never makes every other one large too."""
    files = sorted((p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
    decoded: list[Image.Image] = []
    bad: list[str] = []
    for path in files:
        try:
            rgb, _, _ = decode_rgb(path, max_pixels)
        except (Dropped, OSError) as e:
            log.debug("%s: %s", path, e)
            bad.append(path.name)
            continue
        decoded.append(rgb)
    if not decoded:
        return np.zeros((0, 1, 1, 3), np.uint8), bad
    size = Counter(im.size for im in decoded).most_common(1)[0][0]
    resized = sum(im.size != size for im in decoded)
    if resized:
        log.warning("%d images resized to %dx%d (the most common size)", resized, *size)
    same_size = [im if im.size == size else im.resize(size, Image.Resampling.BICUBIC) for im in decoded]
    images = np.stack([np.asarray(im) for im in same_size])
    return images, bad


def _natural_key(path: Path) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))
