"""clean stage: paths.raw/faces -> paths.clean/{faces.npy, manifest.jsonl}, metrics/data.json, a preview grid.

Usage:
    animegan clean [--set data.image_size=32]      # or: dvc repro clean
    from stages.clean import execute; execute(load_params("params.yaml"))

The clean folder, the preview (the first data.preview_count faces) and metrics/data.json are written as
temporaries first and swapped in together (pipeline.core.atomic's staged_outputs): a failure changes none of them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pipeline.core.atomic import json_text, remove_stale_temporaries, staged_outputs
from pipeline.core.config import Params
from pipeline.core.image_grid import grid_image
from pipeline.core.outputs import CLEAN_PREVIEW_FILE, DATA_METRICS_FILE
from pipeline.data.clean import FACES_DIR, FACES_FILE, clean_faces, data_metrics, read_source_info


def execute(params: Params) -> None:
    paths, data = params.paths, params.data
    raw, clean = Path(paths.raw), Path(paths.clean)
    preview_path, metrics_path = Path(paths.plots) / CLEAN_PREVIEW_FILE, Path(paths.metrics) / DATA_METRICS_FILE
    remove_stale_temporaries(clean, preview_path, metrics_path)
    with staged_outputs() as out:  # the clean folder, preview and metrics change together or not at all
        folder = out.folder(clean)
        result = clean_faces(
            raw / FACES_DIR,
            folder,
            image_size=data.image_size,
            min_side=data.min_side,
            max_pixels=data.max_pixels,
            resample=data.resample,
        )
        preview = np.array(np.load(folder / FACES_FILE, mmap_mode="r")[: data.preview_count])
        grid = grid_image(preview, ncol=math.ceil(math.sqrt(len(preview))))
        grid.save(out.file(preview_path), format="PNG")
        metrics = data_metrics(result, read_source_info(raw))
        out.file(metrics_path).write_text(json_text(metrics), encoding="utf-8")
