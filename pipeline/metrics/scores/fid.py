"""FID: the Fréchet distance between the Inception features of a draw and of the clean faces (lower is better).

Usage:
    from pipeline.metrics.scoring import score_draws
    score_draws(draws, resources, ["fid"])["fid"]      # {"mean", "std", "draws"}

The draw's features are Gaussian-fitted and compared with the FID reference's mean and covariance
(pipeline.metrics.fid, pipeline.metrics.fid_reference). What the number depends on (the data, the weights, the
reference size, the image count) is in every eval.json's base provenance, so FID declares nothing more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.metrics.fid import fid_of_features
from pipeline.metrics.registry import FEATURES, REFERENCE, register_metric

if TYPE_CHECKING:
    from pipeline.metrics.resources import Draw, Resources


@register_metric("fid", label="FID", better="lower", needs=(FEATURES, REFERENCE))
def fid(draw: Draw, resources: Resources) -> float:
    reference = resources.reference
    return fid_of_features(draw.features, reference.mean, reference.cov)
