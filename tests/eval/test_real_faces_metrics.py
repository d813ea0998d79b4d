"""On real anime faces (the shared 5k zip; skipped without it), with the untrained calibrated Inception that tests
can use offline: precision/recall tell fidelity from diversity, and `animegan evaluate --images` finds the training
faces a folder hands back. Slow: every image goes through Inception on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from eval_project import project_params
from PIL import Image, ImageFilter
from real_faces import real_faces
from test_copies import MOVES, PICKS, SLOTS
from typer.testing import CliRunner

from pipeline.metrics.inception import extract_features, load_backbone
from pipeline.metrics.prdc import prdc
from stages import fid_reference
from stages.cli import app

pytestmark = pytest.mark.slow

HELD_OUT = range(4000, 4100)  # never in any reference or training set below


@pytest.fixture(scope="module")
def features(module_tmp) -> dict[str, np.ndarray]:
    backbone = load_backbone("untrained", "", module_tmp("cache"), 0, 1.0, device="cpu")
    held = real_faces(HELD_OUT)
    blurred = np.stack([np.asarray(Image.fromarray(f).filter(ImageFilter.GaussianBlur(4))) for f in held])
    return {
        "reference": extract_features(backbone, real_faces(range(100)), 50),
        "held": extract_features(backbone, held, 50),
        "blurred": extract_features(backbone, blurred, 50),
    }


def test_held_out_faces_have_high_precision_and_recall(features) -> None:
    got = prdc(features["reference"], features["held"], 3)
    assert got["precision"] > 0.7 and got["recall"] > 0.7 and got["coverage"] > 0.7


def test_blurred_faces_lose_precision(features) -> None:
    sharp = prdc(features["reference"], features["held"], 3)
    blurred = prdc(features["reference"], features["blurred"], 3)
    assert blurred["precision"] < sharp["precision"] / 2 and blurred["density"] < sharp["density"] / 2


def test_ten_faces_repeated_lose_recall_and_coverage(features) -> None:
    sharp = prdc(features["reference"], features["held"], 3)
    ten = prdc(features["reference"], np.repeat(features["held"][:10], 10, axis=0), 3)
    assert ten["recall"] < 0.1 and ten["coverage"] < sharp["coverage"] / 2
    assert ten["precision"] > 0.6  # each of the ten is a real face: the loss is diversity, not fidelity


def test_evaluate_images_flags_the_training_faces_a_folder_hands_back(tmp_path: Path) -> None:
    train = real_faces(range(1500))
    clean = tmp_path / "data" / "clean"
    clean.mkdir(parents=True)
    np.save(clean / "faces.npy", train)
    overrides = [f"paths.{k}={tmp_path / k}" for k in ("fid_reference", "models", "metrics", "plots")] + [
        f"paths.clean={clean}", "eval.fid.weights=untrained", f"eval.fid.cache_dir={tmp_path / 'cache'}",
        "eval.fid.reference_count=30", "eval.prdc.reference_count=30", "eval.kid.reference_pool=30",
        "eval.kid.subsets=5", "eval.kid.subset_size=20", "eval.afd.real_count=4", "eval.copies.calibration_count=300",
        "eval.afd.detector=mtcnn",  # needs no detector stage (the default, anime, does)
    ]  # fmt: skip
    fid_reference.execute(project_params(overrides))
    folder = tmp_path / "submission"
    folder.mkdir()
    images = list(real_faces(range(4000, 4055)))
    for slot, pick, (dx, dy) in zip(SLOTS, PICKS, MOVES, strict=True):
        moved = np.pad(train[pick], ((1, 1), (1, 1), (0, 0)), mode="edge")[1 - dy : 65 - dy, 1 - dx : 65 - dx]
        images.insert(slot, moved)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i + 1}.jpg", quality=75)  # the course's files: JPEG, quality 75
    sets = [a for o in overrides for a in ("--set", o)]
    result = CliRunner().invoke(app, ["evaluate", "--images", str(folder), *sets])
    assert result.exit_code == 0, result.output
    m = json.loads((tmp_path / "submission-eval.json").read_text())
    assert m["copies"]["flagged"] == SLOTS and m["copied"]["mean"] == pytest.approx(5 / 60)
    closest = m["copies"]["worst"][:5]
    assert all(w["training_index"] == PICKS[SLOTS.index(w["image"])] for w in closest)
    assert (tmp_path / "submission-eval-copies.png").is_file()
