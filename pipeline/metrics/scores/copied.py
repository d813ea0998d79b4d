"""Copied: the share of a draw's images that hand back a training face (lower is better), and the first draw's list.

Usage:
    out = score_draws(draws, resources, ["copied"])
    out["copied"]            # {"mean", "std", "draws"}
    out["copies"]            # draw 0 (the submission): {"threshold", "near", "flagged", "worst": [...]}

Each image's nearest training face under the copy distance (pipeline.metrics.copies, through the copy index), the
image flagged when closer than the calibrated threshold (resources.calibration); `copies` lists the first draw's
flagged images and its eval.copies.worst closest ones within the calibration's search radius. Runs calibrated
otherwise do not compare.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pipeline.metrics.registry import FACES, FEATURES, IMAGES, Score, register_metric

if TYPE_CHECKING:
    from pipeline.metrics.resources import Draw, Resources

log = logging.getLogger(__name__)


def first_draw_copies(entry: dict[str, Any], scores: list[Score], resources: Resources) -> dict[str, Any]:
    found = scores[0].keep
    return {
        "copies": {
            "threshold": resources.calibration.threshold,
            "near": found.near,
            "flagged": [int(i) for i in found.flagged],
            "worst": found.worst(resources.settings.copies.worst),
        }
    }


def calibration_used(resources: Resources) -> dict[str, Any]:
    return {"copy_calibration": resources.calibration.as_dict()}


@register_metric(
    "copied", label="Copied", better="lower", needs=(IMAGES, FEATURES, FACES), finish=first_draw_copies,
    provenance=calibration_used, comparable=("copy_calibration",), note="share of samples that copy a training face",
)  # fmt: skip
def copied(draw: Draw, resources: Resources) -> Score:
    calibration = resources.calibration
    found = resources.copies.check(draw.images, draw.features, calibration.threshold, calibration.near())
    log.info("draw %d: %d of %d images copy a training face", draw.index, len(found.flagged), len(draw.images))
    return Score(found.fraction, keep=found)
