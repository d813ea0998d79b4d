"""The copy check's per-data part, computed once: the index over the clean faces and the threshold's calibration.

Usage:
    from pipeline.metrics.copy_cache import CopySettings, compute_copy_cache, save_copy_cache, load_copy_cache
    settings = CopySettings(calibration_count=1000, quantile=0.01, seed=0, jpeg_quality=75)
    index, calibration = compute_copy_cache(faces, settings)             # minutes at 71k faces, once
    save_copy_cache(Path("data/copy_index"), index, calibration, faces, data_sha256, settings)   # atomic swap
    index, calibration = load_copy_cache(Path("data/copy_index"), faces, data_sha256, settings)
    # raises pipeline.core.manifest.UnusableCache (one line: why) when absent, damaged, stale or out of range

Both depend only on the clean faces (and eval.copies' calibration keys, sample.jpeg_quality for the edited
copies), so the copy_index stage computes them and `evaluate` reads them: an experiment that changed only training
pays for the images it scores. The folder's manifest (pipeline.core.manifest) holds the sha256 of each file and
what they were made from (the faces' hash and count, the settings, this module's FORMAT); load_copy_cache checks
it before it opens a file, then the arrays' dtypes, shapes and finiteness and the calibration's ranges, and raises
UnusableCache on anything wrong: evaluate then warns and computes them itself (and does not keep them), the stage
rebuilds the folder as if it were absent. The calibration holds the pixel side only: its feature-space quantile
depends on the FID reference's subset and is added by evaluate (CopyCheck.feature_quantile, milliseconds).
"""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.atomic import staged_outputs
from pipeline.core.manifest import UnusableCache, check_manifest, write_manifest
from pipeline.metrics.copies import Calibration, CopyCheck
from pipeline.metrics.copy_index import FEATURES_FILE, CopyIndex
from pipeline.metrics.copy_index import META_FILE as INDEX_META_FILE

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
FILES = [FEATURES_FILE, INDEX_META_FILE, CALIBRATION_FILE]
FORMAT = 2  # 2: a manifest with every file's sha256 (1: meta.json only)
FORMER_FILES = {"meta.json"}  # format 1's record: a rebuild replaces it, never refuses the folder for it


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


def made_from(faces: np.ndarray, data_sha256: str, settings: CopySettings) -> dict[str, Any]:
    return {"format": FORMAT, "data_sha256": data_sha256, "count": len(faces), "settings": asdict(settings)}


def save_copy_cache(
    folder: Path, index: CopyIndex, calibration: Calibration, faces: np.ndarray, data_sha256: str,
    settings: CopySettings,
) -> None:  # fmt: skip
    with staged_outputs() as out:  # built aside and swapped in whole: whatever was there (damaged or not) is gone
        tmp = out.folder(Path(folder), ours=lambda name: name in FORMER_FILES)
        index.save(tmp)
        (tmp / CALIBRATION_FILE).write_text(json.dumps(calibration.as_dict(), indent=2) + "\n", encoding="utf-8")
        write_manifest(tmp, FILES, made_from(faces, data_sha256, settings))


def load_copy_cache(
    folder: Path, faces: np.ndarray, data_sha256: str, settings: CopySettings
) -> tuple[CopyIndex, Calibration]:
    folder = Path(folder)
    if not (folder / FEATURES_FILE).is_file():
        raise UnusableCache(f"no copy index in {folder}/")
    problem = check_manifest(folder, made_from(faces, data_sha256, settings))
    if problem is not None:
        raise UnusableCache(problem.reason)
    try:
        index = CopyIndex.load(folder, faces)
        calibration = Calibration.from_dict(json.loads((folder / CALIBRATION_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise UnusableCache(f"copy index in {folder}/ is unusable ({type(e).__name__}: {e})") from None
    if not index.matches(faces):
        raise UnusableCache(f"copy index in {folder}/ was built by other code or for faces of another size")
    return index, calibration
