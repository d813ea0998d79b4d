"""sample stage: paths.models/best.pt or generator.pt -> paths.samples/1.jpg .. N.jpg, paths.submission, a grid.

Usage:
    animegan sample [--set sample.count=100 --set sample.jpeg_quality=90]     # or: dvc repro sample
    from stages.sample import execute; execute(load_params("params.yaml"))

The generator is sample.snapshot's (pipeline.train.best_file): best.pt, the best snapshot train scored on
train.select_by (the last generator when none was scored), or generator.pt; metrics/sample.json says which.
Image i depends only on (sample.seed, i) and the knobs sample.truncation and sample.rejection (pipeline.train.latents,
pipeline.train.rejection; rejection uses the critic in paths.models/checkpoint.pt, a dep of the stage whatever the
knobs: train writes it with generator.pt, so it reruns nothing more; it is the last step's critic, also when the
best snapshot draws). The samples folder, the tarball, the grid and
metrics/sample.json are all written as temporaries first and swapped in together (pipeline.core.atomic's
staged_outputs), so they always match: a failure (a full disk, a read-only metrics/) changes none of them.
A tarball over sample.max_submission_mb is not an error: the stage logs a warning naming the size and the fix
(lower sample.jpeg_quality) and records `over_limit: true` in metrics/sample.json, because the samples are still
what evaluate should score; the course's upload would refuse the file.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from pipeline.core.atomic import json_text, remove_stale_temporaries, staged_outputs
from pipeline.core.config import Params
from pipeline.core.device import describe, resolve_device, sample_device
from pipeline.core.hashing import sha256_file
from pipeline.core.image_grid import grid_image
from pipeline.core.outputs import CHECKPOINT_FILE, SAMPLE_METRICS_FILE, SAMPLES_GRID_FILE
from pipeline.train.best_file import Chosen, chosen_generator
from pipeline.train.critic_file import load_critic
from pipeline.train.generator_file import load_generator
from pipeline.train.rejection import SamplingKnobs, draw_images, knob_metrics
from pipeline.train.sampling import is_numbered_jpeg, write_jpegs, write_submission

log = logging.getLogger(__name__)

GRID_COUNT = 64  # the first images of the submission, in the preview


def execute(params: Params) -> None:
    paths, sample = params.paths, params.sample
    samples, submission = Path(paths.samples), Path(paths.submission)
    grid_path, metrics_path = Path(paths.plots) / SAMPLES_GRID_FILE, Path(paths.metrics) / SAMPLE_METRICS_FILE
    remove_stale_temporaries(samples, submission, grid_path, metrics_path)
    device = sample_device(resolve_device(params.device))  # float64 sampling: the CPU when the device is MPS
    chosen = chosen_generator(Path(paths.models), sample.snapshot)  # best without a scored snapshot: the last
    if chosen.record is not None:
        log.info("drawing the best snapshot (%s): step %d, %s %.4g", chosen.path, chosen.record["step"],
                 chosen.record["select_by"], chosen.record["scores"][chosen.record["select_by"]])  # fmt: skip
    generator_path = chosen.path
    generator = load_generator(generator_path, map_location=device)
    knobs = SamplingKnobs.of(sample)
    critic = None
    if knobs.needs_critic:
        critic = load_critic(Path(paths.models) / CHECKPOINT_FILE, params.train, params.data.image_size)
    drawn = draw_images(generator, critic, knobs, sample.seed, 0, sample.count, sample.batch_size, device)
    images = drawn.images

    preview = images[:GRID_COUNT]
    with staged_outputs() as out:  # samples, tarball, grid and metrics change together or not at all
        folder = out.folder(samples, ours=is_numbered_jpeg)
        write_jpegs(images, folder, sample.jpeg_quality)
        size = write_submission(folder, out.file(submission))
        grid_image(preview, ncol=math.ceil(math.sqrt(len(preview)))).save(
            out.file(grid_path), format="PNG"
        )
        mb = size / 1e6
        over = mb > sample.max_submission_mb
        metrics = {
            "count": sample.count,
            "seed": sample.seed,
            "jpeg_quality": sample.jpeg_quality,
            "image_shape": list(images.shape[1:]),
            "submission_bytes": size,
            "submission_mb": round(mb, 4),
            "max_submission_mb": sample.max_submission_mb,
            "over_limit": over,
            "generator_sha256": sha256_file(generator_path),
            "snapshot": snapshot_metrics(sample.snapshot, chosen),
            "device": describe(device),
            **knob_metrics(knobs, critic, drawn),
        }
        out.file(metrics_path).write_text(json_text(metrics), encoding="utf-8")
    if over:
        log.warning(
            "%s is %.2f MB, over sample.max_submission_mb=%.2f (the course refuses it): lower sample.jpeg_quality",
            submission, mb, sample.max_submission_mb,
        )  # fmt: skip
    log.info("wrote %d samples to %s and %s (%.2f MB)", len(images), samples, submission, mb)


def snapshot_metrics(asked: str, chosen: Chosen) -> dict:
    """sample.json's record of which generator drew the samples: the best snapshot (its step and scores) or the
    last. The snapshot scores are optimistic (the best of several noisy ones): evaluate scores the samples afresh."""
    out = {"asked": asked, "drawn": chosen.snapshot}
    if chosen.record is not None:
        out |= {k: chosen.record[k] for k in ("step", "kimg", "select_by", "scores")}
    return out
