"""evaluate stage: samples (draw 0) + eval.repeats-1 fresh draws -> paths.metrics/eval.json (FID, KID, AFD).

Usage:
    animegan evaluate                                   # or: dvc repro evaluate -> metrics/eval.json
    animegan evaluate --images output/                  # any folder of images -> output-eval.json beside it
    animegan evaluate --images output/ --out my.json
    from stages.evaluate import run, run_images; run(params); metrics = run_images(params, Path("output"))

Draw 0 is the submitted samples read back from paths.samples; draws d >= 1 come from the generator with latents
that depend only on (sample.seed, d, i), through the same JPEG encode/decode at sample.jpeg_quality, so every draw
is scored as the course would score its files. All draws are scored against the cached FID reference (checked
against the clean data's hash and the weights' hash), KID against the reference's feature pool, AFD with
eval.afd.detector, which also scores eval.afd.real_count real clean faces for afd_real and afd_rel (for the
trained `anime` detector, only faces it never trained on: afd_real_from says which). Precision, recall, density and
coverage use the reference's cached subset (eval.prdc); every image of every draw is also looked up in the copy
index for training faces within max(threshold, the calibration's novel quantile) (eval.copies; threshold calibrated
on held-out clean faces unless set, the calibration in provenance.copy_calibration), and paths.plots/copies.png
shows the submission's images that came that close beside their training faces (eval.copies.worst of them; those
past the threshold are the copies), or says that none did.

`--images DIR` scores one folder not made by the pipeline (one draw): unreadable files are listed in a warning and
counted in the metrics (`bad_image_count`, `bad_images`), never fatal. Its JSON goes to --out, by default
`<DIR>-eval.json` beside the folder (never into the versioned metrics folder), and the copies picture beside it
(`<DIR>-eval-copies.png`): check a submission for copied training faces before uploading it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from pipeline.core.atomic import atomic_write_json, remove_stale_temporaries
from pipeline.core.config import Params
from pipeline.core.device import resolve_device, sample_device
from pipeline.core.errors import UserError
from pipeline.core.hashing import array_sha256, sha256_file
from pipeline.core.image_grid import save_grid, save_note
from pipeline.data.clean import clean_faces_file, load_clean_faces
from pipeline.metrics.afd import get_detector
from pipeline.metrics.copies import Calibration, CopyCheck
from pipeline.metrics.copy_cache import CopySettings, compute_copy_cache, load_copy_cache
from pipeline.metrics.copy_index import CopyIndex
from pipeline.metrics.detector.afd_real import cached_afd_real, real_subset
from pipeline.metrics.evaluation import PRDC_KEYS, provenance, read_image_folder, score_draws
from pipeline.metrics.fid_reference import check_reference, load_reference
from pipeline.metrics.prdc import PrdcReference
from pipeline.train.generator_file import load_generator
from pipeline.train.sampling import generate, jpeg_roundtrip, read_jpegs
from stages.fid_reference import backbone_for
from stages.sample import GENERATOR_FILE, METRICS_FILE

log = logging.getLogger(__name__)

EVAL_FILE = "eval.json"
COPIES_FILE = "copies.png"


def run(params: Params) -> dict[str, Any]:
    sample = params.sample
    generator = Path(params.paths.models) / GENERATOR_FILE
    device = resolve_device(params.device)  # first: a device that cannot run stops before any work
    remove_stale_temporaries(Path(params.paths.metrics) / EVAL_FILE)
    if params.eval.repeats > 1 and not generator.is_file():  # fail before minutes of scoring draw 0
        raise UserError(f"generator file not found: {generator} (eval.repeats > 1 draws from it; run train first)")
    check_samples_generator(params)
    ctx = _context(params, device)
    submitted = read_jpegs(Path(params.paths.samples))
    metrics = _score(params, ctx, _draws(params, submitted, sample_device(ctx["backbone"].device)))
    metrics["provenance"] = provenance(
        ctx["data_sha256"], ctx["backbone"], ctx["detector"], sample.count, params.eval.repeats, ctx["reference"],
        sample.jpeg_quality, extra=_extra(params, ctx),
    )  # fmt: skip
    picture = Path(params.paths.plots) / COPIES_FILE
    save_copies_picture(metrics, submitted, ctx["faces"], picture)
    if "picture" not in metrics["copies"]:  # dvc.yaml declares the picture: it must exist, and say why it is empty
        save_note(f"no sample within {metrics['copies']['near']:.4g} of a training face", picture)
    atomic_write_json(Path(params.paths.metrics) / EVAL_FILE, metrics)
    return metrics


def run_images(params: Params, folder: Path, out: Path | None = None) -> tuple[dict[str, Any], Path]:
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
    ctx = _context(params)
    metrics = _score(params, ctx, [images])
    extra = {**_extra(params, ctx), "source": str(folder), "bad_image_count": len(bad), "bad_images": bad}
    metrics["provenance"] = provenance(
        ctx["data_sha256"], ctx["backbone"], ctx["detector"], len(images), 1, ctx["reference"], None, extra=extra
    )
    save_copies_picture(metrics, images, ctx["faces"], target.with_name(f"{target.stem}-copies.png"))
    atomic_write_json(target, metrics)
    return metrics, target


def check_samples_generator(params: Params) -> None:
    """UserError unless the samples (draw 0) were drawn by the generator.pt that draws the other draws, as
    metrics/sample.json records: after retraining without re-sampling, one score would mix two generators."""
    generator = Path(params.paths.models) / GENERATOR_FILE
    if not generator.is_file():  # eval.repeats == 1: only the samples are scored
        return
    stamp, samples = Path(params.paths.metrics) / METRICS_FILE, params.paths.samples
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


def default_out(folder: Path) -> Path:
    folder = Path(folder).resolve()
    return folder.with_name(f"{folder.name}-eval.json")


def save_copies_picture(metrics: dict[str, Any], images: np.ndarray, faces: np.ndarray, path: Path) -> None:
    """One row per listed image: the image, then its nearest training face. Nothing listed: no picture."""
    rows = metrics.get("copies", {}).get("worst", [])
    if not rows:
        return
    size = faces.shape[1:3]
    pairs = []
    for row in rows:
        image = images[row["image"]]
        if image.shape[:2] != size:
            image = np.asarray(Image.fromarray(image).resize(size[::-1], Image.Resampling.LANCZOS))
        pairs += [image, np.asarray(faces[row["training_index"]])]
    save_grid(np.stack(pairs), path, ncol=2)
    metrics["copies"]["picture"] = str(path)


def format_table(metrics: dict[str, Any]) -> str:
    """Plain-text summary for the terminal."""
    lines = [f"{'metric':<9} {'mean':>12} {'std':>12}  draws"]
    for key in ("fid", "kid", "afd", *PRDC_KEYS, "copied"):
        m = metrics.get(key)
        if m is None:
            continue
        draws = " ".join(f"{v:.4g}" for v in m["draws"])
        lines.append(f"{key:<9} {m['mean']:>12.6g} {m['std']:>12.4g}  {draws}")
    afd_rel = metrics["afd_rel"]
    lines.append(f"afd_real {_fmt(metrics['afd_real'])}   afd_rel {_fmt(afd_rel)}")
    prov = metrics["provenance"]
    detector = prov["detector"].get("name")
    lines.append(f"backbone {prov['fid_backbone']}  detector {detector}  images {prov['image_count']}")
    copies = metrics.get("copies")
    if copies is not None:
        flagged = copies["flagged"]
        shown = ", ".join(str(i) for i in flagged[:20]) + (" ..." if len(flagged) > 20 else "")
        lines.append(f"copies of training faces (distance < {copies['threshold']:.4g}): {len(flagged)}"
                     + (f" (images {shown})" if flagged else ""))  # fmt: skip
        if "picture" in copies:
            lines.append(f"closest images beside their training faces: {copies['picture']}")
        else:
            lines.append(f"no image within {copies['near']:.4g} of a training face (as close as new faces come)")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _context(params: Params, device: torch.device | None = None) -> dict[str, Any]:
    faces = load_clean_faces(params.paths.clean)
    faces_path = clean_faces_file(params.paths.clean)
    data_sha256 = array_sha256(faces_path)
    backbone = backbone_for(params, device)
    folder = Path(params.paths.fid_reference)
    reference = load_reference(folder)
    check_reference(reference, data_sha256, backbone, folder)
    check_prdc_subset(reference, params, folder)
    detector = get_detector(params.eval.afd.detector, params)
    unseen = getattr(detector, "unseen_faces", None)  # only a trained detector has faces it never saw
    cached_real = None
    if params.eval.afd.detector == "anime":
        cached_real = cached_afd_real(Path(params.paths.detector), detector, faces, params.eval.afd.real_count)
    index, pixel_calibration = _copy_cache(params, faces, data_sha256)
    copies = CopyCheck(faces, reference.prdc_features, reference.prdc_indices, index=index)
    return {
        "data_sha256": data_sha256, "backbone": backbone, "reference": reference, "detector": detector,
        "real": None if cached_real else real_subset(faces, params.eval.afd.real_count, among=unseen),
        "afd_real": cached_real["afd_real"] if cached_real else None,
        "real_count": cached_real["real_count"] if cached_real else None,
        "real_from": "all" if unseen is None else "detector holdout",
        "faces": faces, "prdc": PrdcReference(reference.prdc_features, params.eval.prdc.k),
        "copies": copies, "calibration": _calibration(params, copies, pixel_calibration),
    }  # fmt: skip


def check_prdc_subset(reference: Any, params: Params, folder: Path) -> None:
    """The cached precision/recall subset must be the one eval.prdc asks for (fid_reference computes it)."""
    prdc = params.eval.prdc
    count = reference.meta.get("count", 0)
    want = count if prdc.reference_count == 0 else min(prdc.reference_count, count)
    got = (reference.meta.get("prdc_count"), reference.meta.get("prdc_seed"))
    if got != (want, prdc.seed):
        raise UserError(
            f"FID reference in {folder}/ holds no precision/recall subset of {want} faces with seed {prdc.seed} "
            "(eval.prdc changed or an older reference): rerun `animegan fid-reference`"
        )
    if want <= prdc.k:
        raise UserError(f"eval.prdc.reference_count: {want} reference faces, but k-NN needs more than k={prdc.k}")


def _copy_cache(params: Params, faces: np.ndarray, data_sha256: str) -> tuple[Any, Calibration]:
    """The copy_index stage's index and calibration; computed here (and not kept) when absent or stale."""
    settings = CopySettings.from_params(params)
    cached = load_copy_cache(Path(params.paths.copy_index), faces, data_sha256, settings)
    if cached is not None:
        return cached
    log.warning(
        "no current copy index in %s: computing it for this run (`animegan copy-index` caches it)",
        params.paths.copy_index,
    )
    if params.eval.copies.threshold > 0:  # a fixed threshold needs no calibration
        return CopyIndex.build(faces, seed=settings.seed), Calibration(threshold=0.0, method="unused")
    return compute_copy_cache(faces, settings)


def _calibration(params: Params, copies: CopyCheck, pixel: Calibration) -> Calibration:
    c = params.eval.copies
    if c.threshold > 0:
        return Calibration(threshold=c.threshold, method="fixed")
    return dataclasses.replace(pixel, feature_quantile=copies.feature_quantile(pixel.quantile or c.quantile))


def _score(params: Params, ctx: dict[str, Any], draws: Any) -> dict[str, Any]:
    kid = params.eval.kid
    return score_draws(
        draws, ctx["backbone"], ctx["reference"], ctx["detector"],
        ctx["real"] if ctx["real"] is not None else np.zeros((0, 1, 1, 3), np.uint8),
        batch_size=params.eval.fid.batch_size, kid_subsets=kid.subsets, kid_subset_size=kid.subset_size,
        kid_seed=kid.seed, prdc=ctx["prdc"], copies=ctx["copies"], copy_threshold=ctx["calibration"].threshold,
        copy_near=ctx["calibration"].near(), worst=params.eval.copies.worst, afd_real=ctx["afd_real"],
    )  # fmt: skip


def _extra(params: Params, ctx: dict[str, Any]) -> dict[str, Any]:
    kid = params.eval.kid
    return {
        "sample_seed": params.sample.seed,
        "kid_subsets": kid.subsets,
        "kid_subset_size": kid.subset_size,
        "kid_seed": kid.seed,
        "afd_real_count": ctx["real_count"] if ctx["real"] is None else len(ctx["real"]),
        "afd_real_from": ctx["real_from"],
        "prdc_k": params.eval.prdc.k,
        "prdc_reference_count": ctx["reference"].meta.get("prdc_count"),
        "prdc_seed": params.eval.prdc.seed,
        "copy_calibration": ctx["calibration"].as_dict(),
    }


def _draws(params: Params, submitted: np.ndarray, device: Any) -> Iterator[np.ndarray]:
    sample = params.sample
    if len(submitted) != sample.count:
        raise UserError(
            f"{params.paths.samples} holds {len(submitted)} images but sample.count is {sample.count}: rerun sample"
        )
    yield submitted
    if params.eval.repeats > 1:
        generator = load_generator(Path(params.paths.models) / GENERATOR_FILE, map_location=device)
        for d in range(1, params.eval.repeats):
            images = generate(generator, sample.seed, d, sample.count, sample.batch_size, device)
            yield jpeg_roundtrip(images, sample.jpeg_quality)
