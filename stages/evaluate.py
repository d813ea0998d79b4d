"""evaluate stage: samples (draw 0) + eval.repeats-1 fresh draws -> paths.metrics/eval.json (every registered metric).

Usage:
    animegan evaluate                                   # or: dvc repro evaluate -> metrics/eval.json
    animegan evaluate --images output/                  # any folder of images -> output-eval.json beside it
    animegan evaluate --images output/ --out my.json
    from stages.evaluate import execute, execute_on_images
    execute(params); metrics, written = execute_on_images(params, Path("output"))

Draw 0 is the submitted samples read back from paths.samples; draws d >= 1 come from the generator as the sample
stage draws them (pipeline.metrics.draws). Every draw is scored on every registered metric (pipeline.metrics.scores:
FID, KID, AFD with afd_real, precision, recall, density, coverage, the copied share) with what
pipeline.metrics.evaluation loads once and checks against the clean data: the FID reference, the detector, the
copy index and its calibration. paths.plots/copies.png shows the submission's images that came closest to a
training face beside it (eval.copies.worst of them; those past the threshold are the copies), or says that none did.

`--images DIR` scores one folder not made by the pipeline (one draw): unreadable files are listed in a warning and
counted in the metrics (`bad_image_count`, `bad_images`), never fatal. Its JSON goes to --out, by default
`<DIR>-eval.json` beside the folder (never into the versioned metrics folder), and the copies picture beside it
(`<DIR>-eval-copies.png`): check a submission for copied training faces before uploading it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.core.atomic import atomic_write_json, remove_stale_temporaries
from pipeline.core.config import Params
from pipeline.core.device import resolve_device, sample_device
from pipeline.core.errors import UserError
from pipeline.core.outputs import COPIES_PICTURE_FILE, EVAL_METRICS_FILE
from pipeline.metrics.draws import check_draws_can_be_made, evaluation_draws
from pipeline.metrics.eval_output import format_table as format_table  # the CLI and the notebook print it
from pipeline.metrics.eval_output import save_copies_picture
from pipeline.metrics.evaluation import load_evaluation
from pipeline.metrics.image_folder import read_image_folder
from pipeline.train.rejection import SamplingKnobs
from pipeline.train.sampling import read_jpegs

log = logging.getLogger(__name__)


def execute(params: Params) -> dict[str, Any]:
    target = Path(params.paths.metrics) / EVAL_METRICS_FILE
    device = resolve_device(params.device)  # first: a device that cannot run stops before any work
    remove_stale_temporaries(target)
    check_draws_can_be_made(params)
    evaluation = load_evaluation(params, device)
    submitted = read_jpegs(Path(params.paths.samples))
    metrics = evaluation.score(evaluation_draws(params, submitted, sample_device(evaluation.resources.backbone.device)))
    knobs = SamplingKnobs.of(params.sample)  # recorded when set, so a run with the defaults reads as before
    drawn_with = {"sampling": knobs.as_dict()} if knobs != SamplingKnobs() else {}
    metrics["provenance"] = evaluation.provenance(
        params.sample.count, params.eval.repeats, params.sample.jpeg_quality,
        {"sample_seed": params.sample.seed, **drawn_with},
    )  # fmt: skip
    picture = Path(params.paths.plots) / COPIES_PICTURE_FILE  # dvc.yaml declares it: a note when nothing is listed
    save_copies_picture(metrics, submitted, evaluation.faces, picture, note_when_empty=True)
    atomic_write_json(target, metrics)
    return metrics


def execute_on_images(params: Params, folder: Path, out: Path | None = None) -> tuple[dict[str, Any], Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--images: no such folder {folder}")
    target = Path(out) if out else default_out(folder)
    if target.is_dir():
        raise UserError(f"--out {target} is a folder: give the path of the JSON file to write")
    images, bad = read_image_folder(folder, params.data.max_pixels)
    if bad:
        log.warning("%d unreadable images skipped in %s: %s", len(bad), folder, ", ".join(bad))
    if len(images) < 2:
        raise UserError(f"--images: {folder} holds {len(images)} readable images; FID needs at least 2")
    evaluation = load_evaluation(params)
    metrics = evaluation.score([images])
    extra = {"sample_seed": params.sample.seed, "source": str(folder), "bad_image_count": len(bad), "bad_images": bad}
    metrics["provenance"] = evaluation.provenance(len(images), 1, None, extra)
    save_copies_picture(metrics, images, evaluation.faces, target.with_name(f"{target.stem}-copies.png"))
    atomic_write_json(target, metrics)
    return metrics, target


def default_out(folder: Path) -> Path:
    folder = Path(folder).resolve()
    return folder.with_name(f"{folder.name}-eval.json")
