"""End to end: fid_reference -> sample -> evaluate on a tiny project, untrained backbone and MTCNN, run twice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from eval_project import make_project, project_params, tiny_generator
from PIL import Image
from typer.testing import CliRunner

from pipeline.core.errors import UserError
from pipeline.data.cartoon import cartoon_faces
from pipeline.metrics.image_folder import read_image_folder
from pipeline.train.generator_file import generator_config, save_generator
from stages import evaluate, fid_reference, sample
from stages.cli import app


@pytest.fixture(scope="module")
def project(module_tmp) -> tuple[Path, list[str]]:
    root = module_tmp("evalproj")
    overrides = make_project(root)
    params = project_params(overrides)
    fid_reference.execute(params)
    sample.execute(params)
    return root, overrides


def test_evaluate_twice_gives_identical_metrics_files(project: tuple[Path, list[str]]) -> None:
    root, overrides = project
    params = project_params(overrides)
    evaluate.execute(params)
    first = (root / "metrics" / "eval.json").read_bytes()
    evaluate.execute(params)
    assert (root / "metrics" / "eval.json").read_bytes() == first

    m = json.loads(first)
    for key in ("fid", "kid", "afd"):
        assert set(m[key]) >= {"mean", "std", "draws"} and len(m[key]["draws"]) == 2
    assert m["fid"]["mean"] > 0 and all(0 <= a <= 1 for a in m["afd"]["draws"])
    assert 0 <= m["afd_real"] <= 1
    p = m["provenance"]
    assert p["fid_backbone"] == "untrained" and len(p["weights_sha256"]) == 64
    assert p["detector"]["name"] == "mtcnn" and p["detector"]["thresholds"] == [0.6, 0.7, 0.7]
    assert (p["image_count"], p["repeats"], p["reference_count"], p["jpeg_quality"]) == (8, 2, 16, 75)
    assert p["device"] == "cpu" and p["packages"]["torch"] and len(p["dataset_sha256"]) == 64
    assert p["inception"] == {"kernels": "onednn-blocks", "batchnorm": "folded", "memory_format": "channels_last",
                              "precision": "fp32", "compile": False}  # fmt: skip
    assert p["detector_speed"] == {"bf16": False, "compile": False, "channels_last": False}
    for key in ("precision", "recall", "density", "coverage", "copied"):
        assert len(m[key]["draws"]) == 2 and all(v >= 0 for v in m[key]["draws"]), key
    assert all(v <= 1 for key in ("precision", "recall", "coverage", "copied") for v in m[key]["draws"])
    assert (p["prdc_k"], p["prdc_reference_count"], p["prdc_seed"]) == (3, 16, 0)
    cal = p["copy_calibration"]
    assert cal["method"] == "calibrated" and cal["held_out"] == 15 and cal["threshold"] == m["copies"]["threshold"]
    worst, near = m["copies"]["worst"], m["copies"]["near"]
    assert near == max(cal["threshold"], cal["novel_quantile"])  # samples as close as the closest new faces come
    assert len(worst) <= 8 and [w["distance"] for w in worst] == sorted(w["distance"] for w in worst)
    assert all(w["distance"] <= near for w in worst)
    picture = root / "plots" / "copies.png"  # the listed images beside their faces, or a note that none came near
    assert picture.is_file() and m["copies"].get("picture") == (str(picture) if worst else None)
    assert (Image.open(picture).size == (400, 40)) != bool(worst)  # save_note's card only when nothing is listed


def test_reference_is_kept_when_current_and_refused_when_stale(project: tuple[Path, list[str]]) -> None:
    root, overrides = project
    stats = root / "data" / "fid_reference" / "stats.npz"
    before = stats.stat().st_mtime_ns
    fid_reference.execute(project_params(overrides))
    assert stats.stat().st_mtime_ns == before  # same data and weights: not recomputed

    other = root / "other_clean"
    other.mkdir()
    np.save(other / "faces.npy", cartoon_faces(count=16, size=16, seed=99))
    with pytest.raises(UserError, match="stale.*data_sha256"):
        evaluate.execute(project_params(overrides + [f"paths.clean={other}"]))


def test_evaluate_images_folder_reports_bad_files(
    project: tuple[Path, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    root, overrides = project
    folder = root / "student_output"
    shutil.copytree(root / "samples", folder)
    (folder / "9.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.txt").write_text("ignored: not an image name")
    sets = [a for o in overrides for a in ("--set", o)]
    result = CliRunner().invoke(app, ["evaluate", "--images", str(folder), *sets])
    assert result.exit_code == 0, result.output
    assert "fid" in result.output and "wrote" in result.output  # the table
    assert any("9.jpg" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    m = json.loads((root / "student_output-eval.json").read_text())
    assert m["provenance"]["bad_image_count"] == 1 and m["provenance"]["bad_images"] == ["9.jpg"]
    assert m["provenance"]["image_count"] == 8 and len(m["fid"]["draws"]) == 1 and m["fid"]["std"] == 0.0
    assert len(m["precision"]["draws"]) == 1
    assert (root / "student_output-eval-copies.png").is_file() == bool(m["copies"]["worst"])
    assert "copies of training faces" in result.output


def test_evaluate_images_flags_a_training_face_handed_back(project: tuple[Path, list[str]]) -> None:
    root, overrides = project
    faces = np.load(root / "data" / "clean" / "faces.npy")
    folder = root / "with_copy"
    folder.mkdir()
    for i, face in enumerate(cartoon_faces(count=6, size=16, seed=123)):  # new faces: not in the training set
        Image.fromarray(face).save(folder / f"{i + 1}.png")
    Image.fromarray(faces[5]).save(folder / "7.png")  # a training face, handed back unchanged
    sets = [a for o in overrides for a in ("--set", o)]
    result = CliRunner().invoke(app, ["evaluate", "--images", str(folder), *sets])
    assert result.exit_code == 0, result.output
    m = json.loads((root / "with_copy-eval.json").read_text())
    assert m["copies"]["flagged"] == [6] and m["copied"]["mean"] == pytest.approx(1 / 7)
    assert m["copies"]["worst"][0] == {**m["copies"]["worst"][0], "image": 6, "training_index": 5, "copy": True}
    assert (root / "with_copy-eval-copies.png").is_file()


def test_a_reference_without_the_precision_recall_subset_is_refused(project: tuple[Path, list[str]]) -> None:
    _, overrides = project
    with pytest.raises(UserError, match="no precision/recall subset of 10 faces.*rerun `animegan fid-reference`"):
        evaluate.execute(project_params(overrides + ["eval.prdc.reference_count=10"]))


def test_reference_chunks_and_kid_pool_match_a_direct_computation(
    project: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.metrics.fid_reference as fr
    from pipeline.metrics.fid import FeatureStats
    from pipeline.metrics.fid_reference import backbone_for
    from pipeline.metrics.inception import extract_features

    root, overrides = project
    backbone = backbone_for(project_params(overrides))
    faces = np.load(root / "data" / "clean" / "faces.npy")
    monkeypatch.setattr(fr, "CHUNK", 3)  # pool members fall in several chunks
    ref = fr.compute_reference(backbone, faces, count=10, batch_size=4, kid_pool=5, kid_seed=0)
    direct = extract_features(backbone, faces[:10], batch_size=10)
    pool = np.sort(np.random.default_rng(0).choice(10, 5, replace=False))
    np.testing.assert_array_equal(ref.kid_features, direct[pool])
    stats = FeatureStats.of(direct)
    np.testing.assert_allclose(ref.mean, stats.mean, rtol=1e-12)
    np.testing.assert_allclose(ref.cov, stats.cov, rtol=1e-9, atol=1e-12)
    assert (ref.meta["count"], ref.meta["kid_pool"], ref.meta["fid_backbone"]) == (10, 5, "untrained")


def test_reference_from_another_calibration_seed_is_refused_by_name(project: tuple[Path, list[str]]) -> None:
    """eval.fid.weights=untrained: the reference (calibration_seed 0) cannot score with a seed-1 backbone."""
    root, overrides = project
    eval_json = root / "metrics" / "eval.json"
    before = eval_json.read_bytes() if eval_json.is_file() else None
    sets = [a for o in [*overrides, "eval.fid.calibration_seed=1"] for a in ("--set", o)]
    result = CliRunner().invoke(app, ["evaluate", *sets])
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert "\n" not in message and "weights_sha256" in message and "calibration_seed" in message, message
    assert (eval_json.read_bytes() if eval_json.is_file() else None) == before


def test_reference_from_other_calibration_images_is_refused(
    project: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same seed, other calibration images (as after a change to pipeline/data/cartoon.py): another backbone."""
    import pipeline.metrics.inception as inception

    root, overrides = project
    meta = json.loads((root / "data" / "fid_reference" / "meta.json").read_text())
    assert len(meta["weights_sha256"]) == 64 and meta["calibration_seed"] == 0
    inception._untrained.cache_clear()
    monkeypatch.setattr(inception, "CALIBRATION_COUNT", inception.CALIBRATION_COUNT // 2)
    try:
        with pytest.raises(UserError, match="stale.*weights_sha256"):
            evaluate.execute(project_params(overrides))
    finally:
        inception._untrained.cache_clear()  # later tests calibrate with the real count again


def test_eval_provenance_names_the_backbone_the_reference_was_made_with(project: tuple[Path, list[str]]) -> None:
    root, overrides = project
    metrics = evaluate.execute(project_params(overrides))
    meta = json.loads((root / "data" / "fid_reference" / "meta.json").read_text())
    p = metrics["provenance"]
    assert p["weights_sha256"] == meta["weights_sha256"] and len(p["weights_sha256"]) == 64
    assert p["calibration_seed"] == meta["calibration_seed"] == 0
def test_evaluate_refuses_samples_drawn_by_another_generator(tmp_path: Path) -> None:
    overrides = make_project(tmp_path, sample_count=4)
    params = project_params(overrides)
    sample.execute(params)
    generator = tmp_path / "models" / "generator.pt"
    save_generator(generator, tiny_generator(seed=1), generator_config("dcgan", 8, 4, 16))  # retrained, not re-sampled
    with pytest.raises(UserError, match=r"samples/ was drawn by another generator .* than .*generator.pt"):
        evaluate.execute(params)
    (tmp_path / "metrics" / "sample.json").unlink()
    with pytest.raises(UserError, match=r"sample.json does not say which generator drew"):
        evaluate.execute(params)
    assert not (tmp_path / "metrics" / "eval.json").exists()


def test_evaluate_images_bounds_pixels_as_clean_does_and_never_enlarges_the_rest(
    project: tuple[Path, list[str]],
) -> None:
    root, overrides = project
    folder = root / "with_a_huge_png"
    shutil.copytree(root / "samples", folder)
    Image.new("RGB", (4000, 4000), (200, 120, 40)).save(folder / "0.png")  # first in name order
    sets = [a for o in [*overrides, "data.max_pixels=1000000"] for a in ("--set", o)]
    result = CliRunner().invoke(app, ["evaluate", "--images", str(folder), *sets])
    assert result.exit_code == 0, result.output
    m = json.loads((root / "with_a_huge_png-eval.json").read_text())
    assert m["provenance"]["bad_images"] == ["0.png"] and m["provenance"]["image_count"] == 8

    images, bad = read_image_folder(folder, max_pixels=4096 * 4096)  # under the default bound: scored, made small
    assert bad == [] and images.shape == (9, 16, 16, 3)


def test_evaluate_images_refuses_an_out_path_that_is_a_folder(project: tuple[Path, list[str]]) -> None:
    root, overrides = project
    out = root / "results"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    sets = [a for o in overrides for a in ("--set", o)]
    result = CliRunner().invoke(app, ["evaluate", "--images", str(root / "samples"), "--out", str(out), *sets])
    assert result.exit_code == 2
    assert "is a folder: give the path of the JSON file" in result.output
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
