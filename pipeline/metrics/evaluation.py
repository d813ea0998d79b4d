"""What evaluate loads once before scoring any draw, checked against the data: one typed object, Evaluation.

Usage:
    from pipeline.metrics.evaluation import load_evaluation
    evaluation = load_evaluation(params)             # faces, their hash, the metrics' resources (Resources)
    metrics = evaluation.score(draws)                # every registered metric (pipeline.metrics.scoring)
    metrics["provenance"] = evaluation.provenance(image_count=1000, repeats=5, jpeg_quality=75, extra={...})
    evaluation.faces, evaluation.data_sha256, evaluation.resources.calibration

Loaded in this order: the clean faces and their hash; the Inception (pipeline.metrics.fid_reference.backbone_for);
the FID reference, refused when damaged (its manifest, pipeline.core.manifest), made from other data or another
Inception, or without the precision/recall subset eval.prdc asks for; the detector (eval.afd.detector; the
`anime` one refused when its files are not the detector stage's or were trained on other faces) and where
afd_real comes from (the detector stage's cached rate when it is intact and applies, else eval.afd.real_count real
faces, only faces the detector never trained on); the copy check (the copy_index stage's index and calibration,
computed here with a warning, and not kept, when absent, damaged or stale) and its threshold (eval.copies.threshold
when set, else the calibration's). Every cache is checked before use: a refusal is one line naming the stage to
rerun, a recompute one warning saying why, and nothing on disk changes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.core.config import Params
from pipeline.core.errors import UserError
from pipeline.core.hashing import array_sha256
from pipeline.core.manifest import UnusableCache
from pipeline.data.clean import clean_faces_file, load_clean_faces
from pipeline.metrics.afd import Detector, get_detector
from pipeline.metrics.copies import Calibration, CopyCheck
from pipeline.metrics.copy_cache import CopySettings, compute_copy_cache, load_copy_cache
from pipeline.metrics.copy_index import CopyIndex
from pipeline.metrics.detector.afd_real import cached_afd_real, real_subset
from pipeline.metrics.detector.model import check_detector_files
from pipeline.metrics.fid_reference import Reference, backbone_for, check_reference, load_reference
from pipeline.metrics.inception import Backbone
from pipeline.metrics.provenance import metric_provenance, provenance
from pipeline.metrics.resources import RealFaces, Resources
from pipeline.metrics.scoring import score_draws

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    data_sha256: str  # the clean faces' hash, as the FID reference and the copy index record it
    faces: np.ndarray  # the clean (training) faces, a memmap
    resources: Resources  # what the metrics score with

    def score(self, draws: Iterable[np.ndarray]) -> dict[str, Any]:
        return score_draws(draws, self.resources)

    def provenance(
        self, image_count: int, repeats: int, jpeg_quality: int | None, extra: dict[str, Any]
    ) -> dict[str, Any]:
        res = self.resources
        return provenance(
            self.data_sha256, res.backbone, res.detector, image_count, repeats, res.reference, jpeg_quality,
            extra={**metric_provenance(res), **extra},
        )  # fmt: skip


def load_evaluation(params: Params, device: torch.device | None = None) -> Evaluation:
    faces = load_clean_faces(params.paths.clean)
    data_sha256 = array_sha256(clean_faces_file(params.paths.clean))
    backbone = backbone_for(params, device)
    reference = checked_reference(params, data_sha256, backbone)
    if params.eval.afd.detector == "anime":  # trained by the detector stage: on these faces, files undamaged?
        check_detector_files(Path(params.paths.detector), data_sha256)
    detector = get_detector(params.eval.afd.detector, params)
    real = real_faces(params, detector, faces, data_sha256)
    copies, calibration = copy_check(params, faces, data_sha256, reference)
    resources = Resources(params.eval, backbone, reference, detector, copies, calibration, real)
    return Evaluation(data_sha256, faces, resources)


def checked_reference(params: Params, data_sha256: str, backbone: Backbone) -> Reference:
    folder = Path(params.paths.fid_reference)
    reference = load_reference(folder)
    check_reference(reference, data_sha256, backbone, folder)
    check_prdc_subset(reference, params, folder)
    return reference


def check_prdc_subset(reference: Reference, params: Params, folder: Path) -> None:
    """The cached precision/recall subset must be the one eval.prdc asks for (fid_reference computes it)."""
    prdc = params.eval.prdc
    count = reference.meta.get("count", 0)
    want = count if prdc.reference_count == 0 else min(prdc.reference_count, count)
    got = (reference.meta.get("prdc_count"), reference.meta.get("prdc_seed"))
    if got != (want, prdc.seed):
        raise UserError(
            f"FID reference in {folder}/ holds no precision/recall subset of {want} faces with seed {prdc.seed} "
            "(eval.prdc changed or an older reference): rerun `animegan fid-reference`"
        )
    if want <= prdc.k:
        raise UserError(f"eval.prdc.reference_count: {want} reference faces, but k-NN needs more than k={prdc.k}")


def real_faces(params: Params, detector: Detector, faces: np.ndarray, data_sha256: str) -> RealFaces:
    """afd_real's source: the `anime` detector stage's cached rate when it applies, else real clean faces (for a
    trained detector, only those it never saw: its rate on its training faces flatters it)."""
    unseen = getattr(detector, "unseen_faces", None)
    origin = "all" if unseen is None else "detector holdout"
    count = params.eval.afd.real_count
    if params.eval.afd.detector == "anime":
        cached = cached_afd_real(Path(params.paths.detector), detector, faces, count, data_sha256)
        if cached:
            return RealFaces(rate=cached["afd_real"], count=cached["real_count"], origin=origin)
    return RealFaces(images=real_subset(faces, count, among=unseen), origin=origin)


def copy_check(
    params: Params, faces: np.ndarray, data_sha256: str, reference: Reference
) -> tuple[CopyCheck, Calibration]:
    index, pixel_calibration = copy_cache(params, faces, data_sha256)
    copies = CopyCheck(faces, reference.prdc_features, reference.prdc_indices, index=index)
    c = params.eval.copies
    if c.threshold > 0:
        return copies, Calibration(threshold=c.threshold, method="fixed")
    feature_quantile = copies.feature_quantile(pixel_calibration.quantile or c.quantile)
    return copies, dataclasses.replace(pixel_calibration, feature_quantile=feature_quantile)


def copy_cache(params: Params, faces: np.ndarray, data_sha256: str) -> tuple[CopyIndex, Calibration]:
    """The copy_index stage's index and calibration; computed here (and not kept) when absent, damaged or stale."""
    settings = CopySettings.from_params(params)
    try:
        return load_copy_cache(Path(params.paths.copy_index), faces, data_sha256, settings)
    except UnusableCache as why:
        log.warning("%s: computing the copy index for this run (`animegan copy-index` caches it)", why)
    if params.eval.copies.threshold > 0:  # a fixed threshold needs no calibration
        return CopyIndex.build(faces, seed=settings.seed), Calibration(threshold=0.0, method="unused")
    return compute_copy_cache(faces, settings)
