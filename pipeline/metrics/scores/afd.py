"""AFD: the share of a draw's images in which the face detector finds a face (higher is better), and afd_real.

Usage:
    out = score_draws(draws, resources, ["afd"])
    out["afd"]                         # {"mean", "std", "draws"}
    out["afd_real"], out["afd_rel"]    # the detector's rate on real clean faces, and afd's mean over it
    detection_rate(detector, images)   # float in [0, 1]

The detector is eval.afd.detector (pipeline.metrics.afd). afd_real is measured once, after the draws, on the
real faces in resources.real, or read from the detector stage's cache (resources.real.rate); afd_rel = afd /
afd_real is null when the detector finds no real face. Runs scored with other detectors do not compare.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.metrics.registry import DETECTOR, IMAGES, Score, register_metric

if TYPE_CHECKING:
    from pipeline.metrics.afd import Detector
    from pipeline.metrics.resources import Draw, Resources

log = logging.getLogger(__name__)


def detection_rate(detector: Detector, images: np.ndarray) -> float:
    if len(images) == 0:
        raise ValueError("no images to detect faces in")
    return float(np.mean(detector.detect(images)))


def afd_real(entry: dict[str, Any], scores: list[Score], resources: Resources) -> dict[str, Any]:
    real = resources.real
    rate = None
    if real is not None and real.images is None:
        rate = real.rate
    elif real is not None and len(real.images):
        rate = detection_rate(resources.detector, real.images)
    if rate == 0:
        log.warning("the detector found no face in %d real images: afd_rel is undefined", real.scored_count)
    return {"afd_real": rate, "afd_rel": entry["mean"] / rate if rate else None}


def real_faces_used(resources: Resources) -> dict[str, Any]:
    real = resources.real
    return {} if real is None else {"afd_real_count": real.scored_count, "afd_real_from": real.origin}


@register_metric(
    "afd", label="AFD", better="higher", needs=(IMAGES, DETECTOR), finish=afd_real, provenance=real_faces_used,
    extras=(("afd_real", "AFD of real faces"), ("afd_rel", "AFD / AFD of real faces")), real_value="afd_real",
    comparable=("detector",),
)  # fmt: skip
def afd(draw: Draw, resources: Resources) -> float:
    return detection_rate(resources.detector, draw.images)
