"""The names of the files stages write into the holder folders (paths.models, paths.metrics, paths.plots): each
defined here once, read by the stage that writes it, by the stages and commands that read it, and by the
output-path check (pipeline.core.config.output_layout).

Usage:
    from pipeline.core.outputs import GENERATOR_FILE, SAMPLE_METRICS_FILE, STAGE_FILES
    Path(params.paths.models) / GENERATOR_FILE          # models/generator.pt: train writes it, sample reads it
    STAGE_FILES["metrics"]                              # every file a stage writes into paths.metrics

A folder a stage replaces whole (paths.clean, paths.fid_reference, paths.copy_index, paths.detector, ...) names its
own files in the module that writes it: only the holders, which several stages share, need one list.
"""

from __future__ import annotations

# paths.models
GENERATOR_FILE = "generator.pt"  # train writes it; sample and evaluate draw from it
CHECKPOINT_FILE = "checkpoint.pt"  # train's resumable state
BEST_FILE = "best.pt"  # train: the best snapshot on train.select_by (pipeline/train/best_file.py); sample draws it

# paths.metrics
DATA_METRICS_FILE = "data.json"  # clean
TRAIN_METRICS_FILE = "train.json"  # train
DETECTOR_METRICS_FILE = "detector.json"  # detector
SAMPLE_METRICS_FILE = "sample.json"  # sample; also says which generator drew the samples: evaluate checks it
EVAL_METRICS_FILE = "eval.json"  # evaluate; compare and report read it

# paths.plots
CLEAN_PREVIEW_FILE = "clean_preview.png"  # clean
SAMPLES_GRID_FILE = "samples_grid.png"  # sample
COPIES_PICTURE_FILE = "copies.png"  # evaluate: the closest samples beside their training faces; report shows it

STAGE_FILES = {  # holder -> the names the stages write inside it
    "models": (GENERATOR_FILE, CHECKPOINT_FILE, BEST_FILE),
    "metrics": (DATA_METRICS_FILE, TRAIN_METRICS_FILE, DETECTOR_METRICS_FILE, SAMPLE_METRICS_FILE, EVAL_METRICS_FILE),
    "plots": (CLEAN_PREVIEW_FILE, SAMPLES_GRID_FILE, COPIES_PICTURE_FILE),
}
