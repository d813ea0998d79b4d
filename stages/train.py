"""train stage: paths.clean/faces.npy -> paths.models/{generator.pt, checkpoint.pt}, metrics/train.json, curves.

Usage:
    animegan train [--set train.epochs=10 --set train.loss=wgan-gp]          # or: dvc repro train
    animegan train --set train.processes=auto      # DDP on every visible GPU: it starts the processes itself
    torchrun --nproc_per_node=4 -m stages.cli train                          # DDP, the same entry point
    animegan train --set train.max_minutes=600     # stop in time: checkpoint, then exit 75; rerun to continue
    from stages.train import execute; execute(load_params("params.yaml"))

Rerunning resumes from paths.models/checkpoint.pt (after an interruption, or with more epochs); a finished run
rerun rewrites nothing. Only rank 0 writes. A second `animegan train` in the same workspace refuses while one runs
(paths.models/.train.lock). With train.sync the run's checkpoints are also published there and a newer verified
synced checkpoint is resumed from (pipeline.train.sync). Curves and per-epoch grids go to paths.plots/train/ (see
pipeline.train.log); the clean faces are loaded once, whole, onto the training device. With train.snapshot_kimg > 0
the snapshots are scored by pipeline.metrics.snapshot_scorer (loaded once per run) and the best is kept in
paths.models/best.pt (pipeline.train.snapshots); with snapshots off best.pt is a copy of generator.pt.
With train.processes > 1 (or auto on several GPUs) it starts the DDP processes through torch's launcher
(pipeline.core.launch), each running train_process; under torchrun it never starts more. With train.max_minutes the
training stops at that budget (pipeline.train.budget): metrics/train.json then says how far it got, the command
says so in one line and exits with code 75 (not 0, so DVC does not record train as done), and when the variable
ANIMEGAN_STOP_REPORT names a file, that summary is also written there as JSON (how `animegan exp` learns of it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.atomic import atomic_write_json, remove_stale_temporaries
from pipeline.core.config import Params
from pipeline.core.device import resolve_device
from pipeline.core.errors import Stopped
from pipeline.core.outputs import BEST_FILE, CHECKPOINT_FILE, GENERATOR_FILE, TRAIN_METRICS_FILE
from pipeline.data.clean import load_clean_faces
from pipeline.train.lease import workspace_lock

if TYPE_CHECKING:
    import torch

    from pipeline.train.snapshots import SnapshotScorer

log = logging.getLogger(__name__)

PLOTS_DIR = "train"


def execute(params: Params) -> None:
    from pipeline.core.launch import launch_local, process_count, under_launcher
    from pipeline.metrics.snapshot_settings import check_snapshot_params
    from pipeline.train.budget import STOP_REPORT_ENV, stop_line
    from pipeline.train.families import check_family_params

    started = time.time()  # the time budget counts from here, in every process this one starts
    if params.train.deterministic:  # the processes it starts inherit it
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before CUDA starts: cuBLAS needs it
    check_family_params(params.train)  # train.model and the families' sections: refused before any work
    check_snapshot_params(params)  # metric names, and with snapshots on the reference and detector: before any work
    count = 1 if under_launcher() else process_count(params.train.processes, params.device)
    if count > 1:
        summary = launch_local(train_process, (params, started), count)[0]
    else:
        summary = train_process(params, started)
    if summary is not None and summary.get("stopped"):
        if report := os.environ.get(STOP_REPORT_ENV):
            atomic_write_json(Path(report), summary)
        raise Stopped(stop_line(summary))


def train_process(params: Params, started: float) -> dict[str, Any] | None:
    """Train in this process (one rank of several under DDP); the summary on rank 0, None on the others."""
    from pipeline.core.distributed import init_distributed
    from pipeline.train.budget import Budget
    from pipeline.train.log import DvcLiveTrainLog
    from pipeline.train.loop import TrainPaths, train_gan

    paths = params.paths
    models = Path(paths.models)
    # the device first: one that cannot run stops before any work (resolving it starts nothing)
    resolve_device(params.device, int(os.environ.get("LOCAL_RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))
    faces = load_clean_faces(paths.clean, params.data.image_size, mmap=False)  # bad faces: refused, nothing made
    # one trainer per workspace: under torchrun only rank 0 (RANK is set before any process group exists) locks
    with contextlib.nullcontext() if int(os.environ.get("RANK", "0")) else workspace_lock(models):
        dist_info = init_distributed(params.device)
        if dist_info.is_main:  # what a kill inside a write of best.pt left (resume cleans up the checkpoint's)
            remove_stale_temporaries(models / BEST_FILE)
        try:
            summary = train_gan(
                faces,
                params.train,
                TrainPaths(checkpoint=models / CHECKPOINT_FILE, generator=models / GENERATOR_FILE,
                           best=models / BEST_FILE),
                dist_info,
                make_log=lambda start_step: DvcLiveTrainLog(Path(paths.plots) / PLOTS_DIR, start_step),
                make_scorer=lambda device: snapshot_scorer(params, device),
                budget=Budget.from_minutes(params.train.max_minutes, started),
            )
            if dist_info.is_main:
                remove_stale_temporaries(Path(paths.metrics) / TRAIN_METRICS_FILE)
                write_metrics_if_changed(Path(paths.metrics) / TRAIN_METRICS_FILE, summary)
                return summary
            return None
        finally:
            dist_info.close()


def snapshot_scorer(params: Params, device: torch.device) -> SnapshotScorer:
    """What scores the snapshots (train.snapshot_kimg > 0), loaded once per run. Imported here: the Inception's
    modules take seconds to import, which a run with snapshots off (and a second trainer waiting to be refused at the
    workspace lock) should not pay."""
    from pipeline.metrics.snapshot_scorer import load_snapshot_scorer

    return load_snapshot_scorer(params, device)


def write_metrics_if_changed(path: Path, summary: dict) -> None:
    text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    atomic_write_json(path, summary)
