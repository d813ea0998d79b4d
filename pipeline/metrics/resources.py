"""What metrics score a draw with: the resources loaded once (Resources) and the draw itself (Draw).

Usage:
    from pipeline.metrics.resources import Draw, RealFaces, Resources
    resources = Resources(settings=params.eval, backbone=backbone, reference=reference, detector=detector)
    resources.missing(("features", "faces"))     # ["faces"]: no copy check loaded
    draw = Draw(0, images, resources)
    draw.features                                # Inception features: computed on first use, kept for the draw
    draw.shared("prdc", lambda: ...)             # computed once per draw for several metrics (precision, recall, ...)
    resources.shared("kid", lambda: ...)         # computed once per evaluation (KID's reference side)

A field left None is a resource not loaded: a metric that needs it cannot be scored (pipeline.metrics.scoring
says which). evaluate loads all of them (pipeline.metrics.evaluation); a snapshot scorer may load only the
Inception, the reference and the detector, and score the metrics that need no more. `settings` is the eval section
of params: each metric reads its own part (eval.kid, eval.prdc, eval.copies, eval.fid.batch_size).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from pipeline.core.config import EvalParams
from pipeline.metrics.inception import Backbone, extract_features
from pipeline.metrics.registry import DETECTOR, FACES, FEATURES, IMAGES, REFERENCE

if TYPE_CHECKING:
    from pipeline.metrics.afd import Detector
    from pipeline.metrics.copies import Calibration, CopyCheck
    from pipeline.metrics.fid_reference import Reference

T = TypeVar("T")

# Which Resources fields each need of pipeline.metrics.registry takes
NEED_FIELDS: dict[str, tuple[str, ...]] = {
    IMAGES: (),
    FEATURES: ("backbone",),
    REFERENCE: ("reference",),
    DETECTOR: ("detector",),
    FACES: ("copies", "calibration"),
}


@dataclass
class RealFaces:
    """Where afd_real comes from: real clean faces to run the detector on, or the rate the detector stage cached."""

    images: np.ndarray | None = None
    rate: float | None = None  # the cached rate (then images is None)
    count: int | None = None  # the faces the cached rate was measured on
    origin: str = "all"  # "all" clean faces, or "detector holdout": only faces the detector never trained on

    @property
    def scored_count(self) -> int | None:
        return self.count if self.images is None else len(self.images)


@dataclass
class Resources:
    settings: EvalParams
    backbone: Backbone | None = None
    reference: Reference | None = None
    detector: Detector | None = None
    copies: CopyCheck | None = None  # the training faces (and their copy index)
    calibration: Calibration | None = None  # the copy threshold and search radius
    real: RealFaces | None = None  # None: afd_real is not measured
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)

    def missing(self, needs: tuple[str, ...]) -> list[str]:
        """The needs (pipeline.metrics.registry.NEEDS) whose resources are not loaded."""
        return [need for need in needs if any(getattr(self, f) is None for f in NEED_FIELDS[need])]

    def shared(self, key: str, make: Callable[[], T]) -> T:
        if key not in self._shared:
            self._shared[key] = make()
        return self._shared[key]


@dataclass
class Draw:
    index: int  # 0: the submission (evaluate), d >= 1: fresh draws
    images: np.ndarray  # uint8 (N, H, W, 3)
    resources: Resources
    _features: np.ndarray | None = field(default=None, repr=False)
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def features(self) -> np.ndarray:
        """float32 (N, 2048) Inception pool features, extracted once for all the metrics that use them."""
        if self._features is None:
            res = self.resources
            if res.backbone is None:
                raise ValueError("no Inception backbone loaded: the draw's features cannot be computed")
            self._features = extract_features(res.backbone, self.images, res.settings.fid.batch_size)
        return self._features

    def shared(self, key: str, make: Callable[[], T]) -> T:
        if key not in self._shared:
            self._shared[key] = make()
        return self._shared[key]
