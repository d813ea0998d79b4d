"""train stage: paths.clean/faces.npy -> paths.models/{generator.pt, checkpoint.pt}, metrics/train.json, curves.

Usage:
    animegan train [--set train.epochs=10 --set train.loss=wgan-gp]          # or: dvc repro train
    torchrun --nproc_per_node=4 -m stages.cli train                          # DDP, the same entry point
    from stages.train import run; run(load_params("params.yaml"))

Rerunning resumes from paths.models/checkpoint.pt (after an interruption, or with more epochs); a finished run
rerun rewrites nothing. Only rank 0 writes. Curves and per-epoch grids go to paths.plots/train/ (see
pipeline.train.log); the clean faces are loaded once, whole, onto the training device.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from pipeline.core.atomic import atomic_write_json, remove_stale_temporaries
from pipeline.core.config import Params
from pipeline.data.clean import load_clean_faces

log = logging.getLogger(__name__)

GENERATOR_FILE = "generator.pt"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "train.json"
PLOTS_DIR = "train"


def run(params: Params) -> None:
    if params.train.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before CUDA starts: cuBLAS needs it
    from pipeline.core.distributed import init_distributed
    from pipeline.train.log import DvcLiveTrainLog
    from pipeline.train.loop import TrainPaths, train_gan

    paths = params.paths
    models = Path(paths.models)
    dist_info = init_distributed(params.device)  # first: a device that cannot run stops before any work
    try:
        faces = load_clean_faces(paths.clean, params.data.image_size, mmap=False)
        summary = train_gan(
            faces,
            params.train,
            TrainPaths(checkpoint=models / CHECKPOINT_FILE, generator=models / GENERATOR_FILE),
            dist_info,
            make_log=lambda start_step: DvcLiveTrainLog(Path(paths.plots) / PLOTS_DIR, start_step),
        )
        if dist_info.is_main:
            remove_stale_temporaries(Path(paths.metrics) / METRICS_FILE)
            write_metrics_if_changed(Path(paths.metrics) / METRICS_FILE, summary)
    finally:
        dist_info.close()


def write_metrics_if_changed(path: Path, summary: dict) -> None:
    text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    atomic_write_json(path, summary)
