"""copy_index stage: paths.clean/faces.npy -> paths.copy_index/ (the copy check's index and its calibration).

Usage:
    animegan copy-index          # or: dvc repro copy_index
    from stages.copy_index import execute; execute(load_params("params.yaml"))

Computes, once per clean data, what the copy check needs beside the images it scores (see
pipeline.metrics.copy_cache): the index that finds each image's nearest training face exactly while comparing only
a few, and the threshold calibrated on held-out clean faces (eval.copies.calibration_count, quantile, seed;
sample.jpeg_quality for the edited copies). `evaluate` reads both, so a training change never recomputes them.
A folder that already holds them for the same faces and settings, every file as its manifest records it, is kept;
one that is absent, damaged, foreign or stale is rebuilt aside and swapped in whole.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.core.atomic import remove_stale_temporaries
from pipeline.core.config import Params
from pipeline.core.hashing import array_sha256
from pipeline.core.manifest import UnusableCache
from pipeline.data.clean import clean_faces_file, load_clean_faces
from pipeline.metrics.copy_cache import CopySettings, compute_copy_cache, load_copy_cache, save_copy_cache

log = logging.getLogger(__name__)


def execute(params: Params) -> None:
    folder = Path(params.paths.copy_index)
    remove_stale_temporaries(folder)
    faces = load_clean_faces(params.paths.clean)
    data_sha256 = array_sha256(clean_faces_file(params.paths.clean))
    settings = CopySettings.from_params(params)
    try:
        load_copy_cache(folder, faces, data_sha256, settings)
        log.info("copy index in %s is up to date (%d faces); delete it to recompute", folder, len(faces))
        return
    except UnusableCache as why:
        log.info("%s: building the copy index", why)
    index, calibration = compute_copy_cache(faces, settings)
    save_copy_cache(folder, index, calibration, faces, data_sha256, settings)
    log.info("copy index and calibration of %d faces written to %s", len(faces), folder)
