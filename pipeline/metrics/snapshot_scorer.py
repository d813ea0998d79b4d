"""What scores the snapshots taken while training: the metric registry with the Inception, the FID reference and the
detector loaded once per run, on the training device.

Usage:
    from pipeline.metrics.snapshot_scorer import load_snapshot_scorer
    scorer = load_snapshot_scorer(params, device)  # once per run (the train stage passes it to train_gan)
    scorer(images)                                 # uint8 (N, H, W, 3) -> {"kid": 0.21, "afd": 0.43}
    scorer.better("kid")                           # "lower": the registry's direction
    scorer.describe()                              # what the scores depend on, for metrics/train.json

The scores are pipeline.metrics.scoring.score_draw's, so a snapshot's KID is computed by evaluate's code with eval's
settings (eval.kid, eval.fid, eval.afd, ...). Only what the listed metrics need is loaded: the Inception for
features, the FID reference (checked against the clean data and the Inception, as evaluate checks it), the detector
of eval.afd.detector. A metric that needs the training faces' copy index (copied) is evaluate's alone. Snapshots are
drawn in float32 and not through JPEG (evaluate scores the files), and picking the best of many noisy scores is
optimistic: evaluate scores the chosen generator again on its own draws. The settings are checked before any work
by pipeline.metrics.snapshot_settings (cheap to import; this module loads torchvision).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pipeline.core.config import Params
from pipeline.core.hashing import array_sha256
from pipeline.data.clean import clean_faces_file
from pipeline.metrics.afd import get_detector
from pipeline.metrics.evaluation import checked_reference
from pipeline.metrics.fid_reference import backbone_for
from pipeline.metrics.registry import DETECTOR, FEATURES, REFERENCE
from pipeline.metrics.resources import Resources
from pipeline.metrics.scores import get_metric
from pipeline.metrics.scoring import score_draw
from pipeline.metrics.snapshot_settings import snapshot_metrics


class RegistryScorer:
    """Scores a snapshot's images on the named metrics with resources loaded once (see the module docstring)."""

    def __init__(self, resources: Resources, names: list[str]) -> None:
        self.resources = resources
        self.names = list(names)

    def better(self, name: str) -> str:
        return get_metric(name).better

    def __call__(self, images: np.ndarray) -> dict[str, float]:
        return score_draw(images, self.resources, self.names)

    def describe(self) -> dict[str, Any]:
        res = self.resources
        out: dict[str, Any] = {"metrics": self.names}
        if res.backbone is not None:
            out |= {"fid_backbone": res.backbone.name, "weights_sha256": res.backbone.weights_sha256}
        if res.detector is not None:
            out["detector"] = res.detector.describe()
        return out


def load_snapshot_scorer(params: Params, device: torch.device) -> RegistryScorer:
    """The scorer of train.snapshot_metrics, its resources on `device` (the training device)."""
    metrics = snapshot_metrics(params)
    needs = {need for metric in metrics for need in metric.needs}
    resources = Resources(params.eval)
    if needs & {FEATURES, REFERENCE}:
        resources.backbone = backbone_for(params, device)
    if REFERENCE in needs:
        data_sha256 = array_sha256(clean_faces_file(params.paths.clean))
        resources.reference = checked_reference(params, data_sha256, resources.backbone)
    if DETECTOR in needs:
        resources.detector = get_detector(params.eval.afd.detector, params)
    return RegistryScorer(resources, [m.name for m in metrics])
