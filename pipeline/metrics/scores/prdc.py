"""Precision, recall, density and coverage of a draw's features against the reference's subset (higher is better).

Usage:
    out = score_draws(draws, resources, ["precision", "recall", "density", "coverage"])
    out["precision"]         # {"mean", "std", "draws"}; the same for the other three

Four metrics from one computation (pipeline.metrics.prdc, k = eval.prdc.k) made once per draw and shared: the
reference's k-NN radii once per evaluation. A draw of k images or fewer has no k-th neighbour: it is skipped, with
one warning. Runs scored with another k or another reference subset do not compare.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.metrics.prdc import PrdcReference
from pipeline.metrics.registry import FEATURES, REFERENCE, Skip, register_metric

if TYPE_CHECKING:
    from pipeline.metrics.resources import Draw, Resources


def prdc_of(draw: Draw, resources: Resources) -> dict[str, float]:
    k = resources.settings.prdc.k
    if len(draw.images) <= k:
        raise Skip(f"a draw needs more than k={k} images")
    subset = resources.reference.prdc_features
    reference = resources.shared("prdc", lambda: PrdcReference(subset, k))
    return draw.shared("prdc", lambda: reference.score(draw.features))


def prdc_settings(resources: Resources) -> dict[str, Any]:
    prdc, subset = resources.settings.prdc, resources.reference.meta.get("prdc_count")
    return {"prdc_k": prdc.k, "prdc_reference_count": subset, "prdc_seed": prdc.seed}


DECLARED = {"better": "higher", "needs": (FEATURES, REFERENCE), "provenance": prdc_settings,
            "comparable": ("prdc_k", "prdc_reference_count")}  # fmt: skip


@register_metric("precision", label="Precision", **DECLARED)
def precision(draw: Draw, resources: Resources) -> float:
    return prdc_of(draw, resources)["precision"]


@register_metric("recall", label="Recall", **DECLARED)
def recall(draw: Draw, resources: Resources) -> float:
    return prdc_of(draw, resources)["recall"]


@register_metric("density", label="Density", note="about 1 when samples match the data", **DECLARED)
def density(draw: Draw, resources: Resources) -> float:
    return prdc_of(draw, resources)["density"]


@register_metric("coverage", label="Coverage", **DECLARED)
def coverage(draw: Draw, resources: Resources) -> float:
    return prdc_of(draw, resources)["coverage"]
