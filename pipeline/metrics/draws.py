"""The draws evaluate scores: the submitted samples (draw 0), then eval.repeats-1 fresh draws from the generator.

Usage:
    from pipeline.metrics.draws import check_draws_can_be_made, evaluation_draws
    check_draws_can_be_made(params)       # UserError before any scoring: no generator, or samples of another one
    for images in evaluation_draws(params, submitted, device): ...   # uint8 (N, H, W, 3), one draw at a time

Draws d >= 1 come from the generator sample.snapshot names (pipeline.train.best_file: best.pt or generator.pt)
with latents that depend only on (sample.seed, d, i) and with the sample stage's knobs (sample.truncation,
sample.rejection: pipeline.train.rejection), through the same JPEG encode/decode at sample.jpeg_quality, so every
draw is scored as the course would score its files (pipeline.train.sampling). The samples must have been drawn by
that same generator, as metrics/sample.json records: after retraining without re-sampling, one score would mix two
generators. These fresh draws are also why evaluate's scores of the best snapshot are not the optimistic ones train
picked it by (the best of several noisy scores).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.config import Params
from pipeline.core.errors import UserError
from pipeline.core.hashing import sha256_file
from pipeline.core.outputs import CHECKPOINT_FILE, SAMPLE_METRICS_FILE
from pipeline.train.best_file import chosen_generator
from pipeline.train.critic_file import load_critic
from pipeline.train.generator_file import load_generator
from pipeline.train.rejection import SamplingKnobs, draw_images
from pipeline.train.sampling import jpeg_roundtrip


def generator_file(params: Params) -> Path:
    """The generator the samples come from: best.pt or generator.pt, as sample.snapshot chooses."""
    return chosen_generator(Path(params.paths.models), params.sample.snapshot).path


def check_draws_can_be_made(params: Params) -> None:
    generator = generator_file(params)
    if params.eval.repeats > 1 and not generator.is_file():  # fail before minutes of scoring draw 0
        raise UserError(f"generator file not found: {generator} (eval.repeats > 1 draws from it; run train first)")
    check_samples_generator(params)


def check_samples_generator(params: Params) -> None:
    """UserError unless the samples (draw 0) were drawn by the generator that draws the other draws."""
    generator = generator_file(params)
    if not generator.is_file():  # eval.repeats == 1: only the samples are scored
        return
    stamp, samples = Path(params.paths.metrics) / SAMPLE_METRICS_FILE, params.paths.samples
    try:
        recorded = json.loads(stamp.read_text(encoding="utf-8")).get("generator_sha256")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if not isinstance(recorded, str):
        raise UserError(f"{stamp} does not say which generator drew {samples}/: rerun `animegan sample`")
    current = sha256_file(generator)
    if recorded != current:
        raise UserError(
            f"{samples}/ was drawn by another generator (sha256 {recorded[:12]}...) than {generator} "
            f"({current[:12]}...): rerun `animegan sample` (or `dvc repro`) so one score comes from one generator"
        )


def evaluation_draws(params: Params, submitted: np.ndarray, device: Any) -> Iterator[np.ndarray]:
    sample = params.sample
    if len(submitted) != sample.count:
        raise UserError(
            f"{params.paths.samples} holds {len(submitted)} images but sample.count is {sample.count}: rerun sample"
        )
    yield submitted
    if params.eval.repeats > 1:
        models = Path(params.paths.models)
        generator = load_generator(generator_file(params), map_location=device)
        knobs = SamplingKnobs.of(sample)
        critic = None
        if knobs.needs_critic:
            critic = load_critic(models / CHECKPOINT_FILE, params.train, params.data.image_size)
        for d in range(1, params.eval.repeats):
            drawn = draw_images(generator, critic, knobs, sample.seed, d, sample.count, sample.batch_size, device)
            yield jpeg_roundtrip(drawn.images, sample.jpeg_quality)
