"""KID: the kernel Inception distance between a draw's features and the reference's pool (lower is better).

Usage:
    score_draws(draws, resources, ["kid"])["kid"]      # {"mean", "std", "draws", "subset_std": per draw}

The unbiased MMD^2 over eval.kid.subsets seeded subsets of eval.kid.subset_size (pipeline.metrics.kid); the
reference side's kernel sums are computed once per evaluation and reused by every draw. `subset_std` is each
draw's spread over its subsets, beside the spread over draws.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.metrics.kid import KidReference
from pipeline.metrics.registry import FEATURES, REFERENCE, Score, register_metric

if TYPE_CHECKING:
    from pipeline.metrics.resources import Draw, Resources


def kid_settings(resources: Resources) -> dict[str, Any]:
    kid = resources.settings.kid
    return {"kid_subsets": kid.subsets, "kid_subset_size": kid.subset_size, "kid_seed": kid.seed}


@register_metric("kid", label="KID", better="lower", needs=(FEATURES, REFERENCE), provenance=kid_settings)
def kid(draw: Draw, resources: Resources) -> Score:
    s = resources.settings.kid
    pool = resources.reference.kid_features
    reference = resources.shared("kid", lambda: KidReference(pool, s.subsets, s.subset_size, s.seed))
    mean, spread = reference.score(draw.features)
    return Score(mean, per_draw={"subset_std": float(spread)})
