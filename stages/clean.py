"""clean stage: paths.raw/faces -> paths.clean/{faces.npy, manifest.jsonl}, metrics/data.json, a preview grid.

Usage:
    animegan clean [--set data.image_size=32]      # or: dvc repro clean
    from stages.clean import run; run(load_params("params.yaml"))

The clean folder is built in a temporary folder beside it and swapped in whole; the metrics file and the preview
(the first data.preview_count faces) are written atomically after it.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_write_json, replace_dir, temp_dir_beside
from pipeline.clean import FACES_DIR, FACES_FILE, clean_faces, data_metrics, read_source_info
from pipeline.config import Params
from pipeline.image_grid import save_grid


def run(params: Params) -> None:
    paths, data = params.paths, params.data
    raw, clean = Path(paths.raw), Path(paths.clean)
    tmp = temp_dir_beside(clean)
    try:
        result = clean_faces(
            raw / FACES_DIR,
            tmp,
            image_size=data.image_size,
            min_side=data.min_side,
            max_pixels=data.max_pixels,
            resample=data.resample,
        )
        replace_dir(tmp, clean)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    faces = np.load(clean / FACES_FILE, mmap_mode="r")
    preview = faces[: data.preview_count]
    save_grid(np.asarray(preview), Path(paths.plots) / "clean_preview.png", ncol=math.ceil(math.sqrt(len(preview))))
    atomic_write_json(Path(paths.metrics) / "data.json", data_metrics(result, read_source_info(raw)))
