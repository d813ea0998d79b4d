"""What an eval.json's numbers depend on: the data, the Inception, the detector, the packages, each metric's settings.

Usage:
    from pipeline.metrics.provenance import metric_provenance, provenance
    metrics["provenance"] = provenance(dataset_sha256, backbone, detector, image_count=1000, repeats=5,
                                       reference=reference, jpeg_quality=75, extra=metric_provenance(resources))

`provenance` records what every metric shares; `metric_provenance` adds what each registered metric declares
(pipeline.metrics.registry: kid's subsets, precision's k, the copy calibration, afd_real's faces). `compare` warns
when two runs differ in a key that makes their numbers incomparable.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pipeline.core.device import describe
from pipeline.metrics.registry import Metric
from pipeline.metrics.scores import all_metrics

if TYPE_CHECKING:
    from pipeline.metrics.afd import Detector
    from pipeline.metrics.fid_reference import Reference
    from pipeline.metrics.inception import Backbone
    from pipeline.metrics.resources import Resources

PACKAGES = ("torch", "torchvision", "numpy", "scipy", "pillow", "facenet-pytorch", "pytorch-fid")


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


def metric_provenance(resources: Resources, metrics: Iterable[Metric] | None = None) -> dict[str, Any]:
    """The settings each metric (default: every registered one) declares its numbers depend on."""
    out: dict[str, Any] = {}
    for metric in all_metrics() if metrics is None else metrics:
        if metric.provenance is not None:
            out.update(metric.provenance(resources))
    return out


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
