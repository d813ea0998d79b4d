"""The copy check's per-data part, computed once: the index over the clean faces and the threshold's calibration.

Usage:
    from pipeline.metrics.copy_cache import CopySettings, compute_copy_cache, save_copy_cache, load_copy_cache
    settings = CopySettings(calibration_count=1000, quantile=0.01, seed=0, jpeg_quality=75)
    index, calibration = compute_copy_cache(faces, settings)             # minutes at 71k faces, once
    save_copy_cache(Path("data/copy_index"), index, calibration, data_sha256, settings)   # atomic folder swap
    cached = load_copy_cache(Path("data/copy_index"), faces, data_sha256, settings)      # None: absent or stale

Both depend only on the clean faces (and eval.copies' calibration keys, sample.jpeg_quality for the edited
copies), so the copy_index stage computes them and `evaluate` reads them: an experiment that changed only training
pays for the images it scores. The folder's meta.json records what they were made from; load_copy_cache returns
None when anything differs (other faces, other settings, an older format), and evaluate then computes them itself.
The calibration holds the pixel side only: its feature-space quantile depends on the FID reference's subset and is
added by evaluate (pipeline.metrics.copies.CopyCheck.feature_quantile, milliseconds).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.atomic import staged_outputs
from pipeline.metrics.copies import Calibration, CopyCheck
from pipeline.metrics.copy_index import CopyIndex

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
META_FILE = "meta.json"
FORMAT = 1


@dataclass(frozen=True)
class CopySettings:
    calibration_count: int
    quantile: float
    seed: int
    jpeg_quality: int

    @classmethod
    def from_params(cls, params: Any) -> CopySettings:
        c = params.eval.copies
        return cls(c.calibration_count, c.quantile, c.seed, params.sample.jpeg_quality)


def compute_copy_cache(faces: np.ndarray, settings: CopySettings) -> tuple[CopyIndex, Calibration]:
    index = CopyIndex.build(faces, seed=settings.seed)
    calibration = CopyCheck(faces, index=index).calibrate(
        settings.calibration_count, settings.quantile, settings.seed, settings.jpeg_quality
    )
    log.info(
        "copy index over %d faces; calibrated threshold %.4g", len(faces), calibration.threshold,
    )  # fmt: skip
    return index, calibration


def wanted_meta(faces: np.ndarray, data_sha256: str, settings: CopySettings) -> dict[str, Any]:
    return {"format": FORMAT, "data_sha256": data_sha256, "count": len(faces), "settings": asdict(settings)}


def save_copy_cache(
    folder: Path, index: CopyIndex, calibration: Calibration, faces: np.ndarray, data_sha256: str,
    settings: CopySettings,
) -> None:  # fmt: skip
    with staged_outputs() as out:
        tmp = out.folder(Path(folder))
        index.save(tmp)
        (tmp / CALIBRATION_FILE).write_text(json.dumps(calibration.as_dict(), indent=2) + "\n", encoding="utf-8")
        meta = wanted_meta(faces, data_sha256, settings)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_copy_cache(
    folder: Path, faces: np.ndarray, data_sha256: str, settings: CopySettings
) -> tuple[CopyIndex, Calibration] | None:
    folder = Path(folder)
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        if meta != wanted_meta(faces, data_sha256, settings):
            log.info("copy cache in %s was made from other faces or settings: not used", folder)
            return None
        index = CopyIndex.load(folder, faces)
        calibration = Calibration(**json.loads((folder / CALIBRATION_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.info("no usable copy cache in %s (%s)", folder, type(e).__name__)
        return None
    if not index.matches(faces):
        return None
    return index, calibration
