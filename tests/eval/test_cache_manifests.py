"""Every cache one stage writes for another is checked before evaluate uses it, on a real small workspace.

The workspace (cartoon faces, the trained `anime` detector, the untrained Inception) runs detector, fid_reference,
copy_index, sample and evaluate once; each test copies it, damages one cache as a user or a disk might (truncated,
one byte flipped, the folder or file of another face set of the same size, a value edited out of range or to the
wrong type with the manifest made to match, so the value checks are what must catch it) and runs evaluate and
`evaluate --images` as a user would. Cheap caches (the copy index and calibration, afd_real) give one warning and
the clean run's numbers; costly ones (the FID reference, the detector's weights) a one-line refusal naming the
stage to rerun. Either way nothing else on disk changes, and the owning stage rebuilds over the damage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from eval_project import REPO
from typer.testing import CliRunner

from pipeline.core.config import Params, load_params
from pipeline.core.manifest import MANIFEST_FILE, read_manifest, write_manifest
from pipeline.data.cartoon import cartoon_faces
from pipeline.train.families.dcgan import Generator
from pipeline.train.generator_file import generator_config, save_generator
from stages import copy_index, detector, evaluate, fid_reference, sample
from stages.cli import app

SIZE, COUNT = 32, 48
SETTINGS = [
    "sample.count=8", "eval.repeats=1", "eval.fid.weights=untrained", "eval.fid.batch_size=8",
    "eval.kid.subsets=2", "eval.kid.subset_size=4", "eval.afd.real_count=6", "eval.copies.calibration_count=20",
    "detector.epochs=1", "detector.batch_size=16", "detector.max_train_faces=0", "detector.holdout=0.25",
    "detector.calibration=0.25",
]  # fmt: skip
DIRS = ("clean", "fid_reference", "copy_index", "models", "samples", "metrics", "plots", "detector")


def overrides(root: Path) -> list[str]:
    paths = [f"paths.{k}={root / k}" for k in DIRS] + [f"paths.submission={root / 'submission.tgz'}"]
    return [*paths, f"eval.fid.cache_dir={root.parent / 'inception-cache'}", *SETTINGS]


def params_for(root: Path, *extra: str) -> Params:
    return load_params(REPO / "params.yaml", [*overrides(root), *extra])


def build(root: Path, seed: int) -> None:
    (root / "clean").mkdir(parents=True)
    np.save(root / "clean" / "faces.npy", cartoon_faces(count=COUNT, size=SIZE, seed=seed))
    torch.manual_seed(0)
    generator = Generator(z_dim=8, g_features=4, image_size=SIZE).eval()
    save_generator(root / "models" / "generator.pt", generator, generator_config("dcgan", 8, 4, SIZE))
    params = params_for(root)
    for stage in (detector, fid_reference, copy_index, sample, evaluate):
        stage.execute(params)
    shutil.copytree(root / "samples", root / "folder")
    evaluate.execute_on_images(params, root / "folder")


@pytest.fixture(scope="module")
def built(module_tmp) -> tuple[Path, Path]:
    """(the clean workspace, one made the same way from another face set of the same size)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches on the shared 2-core CI machine run faster on one thread
    base = module_tmp("caches")
    clean, foreign = base / "clean", base / "foreign"
    build(clean, seed=3)
    build(foreign, seed=9)
    yield clean, foreign
    torch.set_num_threads(before)


@pytest.fixture
def ws(built: tuple[Path, Path], tmp_path: Path) -> Path:
    """A fresh copy of the clean workspace (its paths point into the copy)."""
    root = tmp_path.parent / f"{tmp_path.name}-ws"
    shutil.copytree(built[0], root)
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


def numbers(path: Path, root: Path) -> str:
    """An eval JSON with its own folder's name taken out (the copies picture's path), to compare across copies."""
    return path.read_text().replace(str(root), "ROOT")


def clean_numbers(built: tuple[Path, Path], name: str = "metrics/eval.json") -> str:
    return numbers(built[0] / name, built[0])


# ---------- the faults ----------


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) * 2 // 3] ^= 0x01
    path.write_bytes(bytes(data))


def resign(folder: Path) -> None:
    """Rewrite the manifest so it vouches for the files as they are now: a consistent but edited cache."""
    manifest = read_manifest(folder)
    write_manifest(folder, list(manifest["files"]), manifest["made_from"])


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))
    resign(path.parent)


def set_value(name: str, **values: object) -> Callable[[tuple[Path, Path], Path], None]:
    """A fault: set keys of the JSON file `name` (relative to the workspace), the manifest made to match."""
    return lambda built, ws: edit_json(ws / name, lambda record: record.update(values))


def edit_npz(path: Path, key: str, change: Callable[[np.ndarray], np.ndarray]) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays[key] = change(arrays[key])
    np.savez(path, **arrays)
    resign(path.parent)


def save_and_resign(path: Path, array: np.ndarray) -> None:
    np.save(path, array)
    resign(path.parent)


def foreign_folder(built: tuple[Path, Path], ws: Path, name: str) -> None:
    shutil.rmtree(ws / name)
    shutil.copytree(built[1] / name, ws / name)


def foreign_file(built: tuple[Path, Path], ws: Path, name: str) -> None:
    shutil.copyfile(built[1] / name, ws / name)


# ---------- cheap caches: one warning, the clean run's numbers ----------

COPY_FAULTS = {
    "index truncated": lambda b, ws: truncate(ws / "copy_index/copy_index.npz"),
    "index flipped": lambda b, ws: flip(ws / "copy_index/copy_index.npz"),
    "index of other faces": lambda b, ws: foreign_file(b, ws, "copy_index/copy_index.npz"),
    "folder of other faces": lambda b, ws: foreign_folder(b, ws, "copy_index"),
    "manifest flipped": lambda b, ws: flip(ws / f"copy_index/{MANIFEST_FILE}"),
    "calibration truncated": lambda b, ws: truncate(ws / "copy_index/calibration.json"),
    "threshold out of range": set_value("copy_index/calibration.json", threshold=-1),
    "threshold of the wrong type": set_value("copy_index/calibration.json", threshold="n/a"),
    "features not finite": lambda b, ws: edit_npz(
        ws / "copy_index/copy_index.npz", "features", lambda a: np.where(a > 0, np.nan, a).astype(np.float32)
    ),
    "features of the wrong type": lambda b, ws: edit_npz(
        ws / "copy_index/copy_index.npz", "features", lambda a: a.astype(np.float64)
    ),
}  # fmt: skip

AFD_REAL_FAULTS = {
    "truncated": lambda b, ws: truncate(ws / "detector/afd_real.json"),
    "flipped": lambda b, ws: flip(ws / "detector/afd_real.json"),
    "of other faces": lambda b, ws: foreign_file(b, ws, "detector/afd_real.json"),
    "out of range": set_value("detector/afd_real.json", afd_real=7.5),
    "of the wrong type": set_value("detector/afd_real.json", afd_real="n/a"),
    "count of the wrong type": set_value("detector/afd_real.json", real_count=2.5),
}  # fmt: skip


def run_evaluate_expecting_a_warning(ws: Path, caplog: pytest.LogCaptureFixture, words: str) -> None:
    before = snapshot(ws)
    with caplog.at_level(logging.WARNING):
        evaluate.execute(params_for(ws))
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and words in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    after = snapshot(ws)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert set(changed) <= {"metrics/eval.json", "plots/copies.png"}, changed  # evaluate's own outputs only


@pytest.mark.parametrize("fault", COPY_FAULTS)
def test_a_damaged_or_foreign_copy_index_is_recomputed_with_one_warning(
    built: tuple[Path, Path], ws: Path, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    COPY_FAULTS[fault](built, ws)
    run_evaluate_expecting_a_warning(ws, caplog, "computing the copy index for this run")
    assert numbers(ws / "metrics/eval.json", ws) == clean_numbers(built)


@pytest.mark.parametrize("fault", AFD_REAL_FAULTS)
def test_a_damaged_or_foreign_afd_real_is_measured_again_with_one_warning(
    built: tuple[Path, Path], ws: Path, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    AFD_REAL_FAULTS[fault](built, ws)
    run_evaluate_expecting_a_warning(ws, caplog, "afd_real: the detector stage's afd_real.json not used")
    assert numbers(ws / "metrics/eval.json", ws) == clean_numbers(built)


def test_evaluate_images_recomputes_too(built: tuple[Path, Path], ws: Path, caplog) -> None:
    COPY_FAULTS["index flipped"](built, ws)
    AFD_REAL_FAULTS["out of range"](built, ws)
    with caplog.at_level(logging.WARNING):
        evaluate.execute_on_images(params_for(ws), ws / "folder")
    said = caplog.text
    assert "computing the copy index" in said and "afd_real is 7.5, not a rate" in said
    assert numbers(ws / "folder-eval.json", ws) == clean_numbers(built, "folder-eval.json")


# ---------- costly caches: a one-line refusal naming the stage ----------

REFERENCE_FAULTS = {
    "stats truncated": lambda b, ws: truncate(ws / "fid_reference/stats.npz"),
    "stats flipped": lambda b, ws: flip(ws / "fid_reference/stats.npz"),
    "meta flipped": lambda b, ws: flip(ws / "fid_reference/meta.json"),
    "manifest missing": lambda b, ws: (ws / f"fid_reference/{MANIFEST_FILE}").unlink(),
    "of other faces": lambda b, ws: foreign_folder(b, ws, "fid_reference"),
    "mean not finite": lambda b, ws: edit_npz(ws / "fid_reference/stats.npz", "mean", lambda a: a * np.inf),
    "count of the wrong type": set_value("fid_reference/meta.json", count="n/a"),
}  # fmt: skip

DETECTOR_FAULTS = {
    "weights truncated": lambda b, ws: truncate(ws / "detector/detector.pt"),
    "weights flipped": lambda b, ws: flip(ws / "detector/detector.pt"),
    "holdout flipped": lambda b, ws: flip(ws / "detector/holdout.npy"),
    "trained on other faces": lambda b, ws: foreign_folder(b, ws, "detector"),
    "weights of other faces": lambda b, ws: foreign_file(b, ws, "detector/detector.pt"),
    "threshold out of range": set_value("detector/meta.json", threshold=3.0),
    "threshold of the wrong type": set_value("detector/meta.json", threshold="x"),
    "holdout of the wrong type": lambda b, ws: save_and_resign(ws / "detector/holdout.npy", np.array([0.5, 1.5])),
}  # fmt: skip


def refuses(ws: Path, *args: str) -> str:
    """Run `animegan evaluate` with args; assert exit 2 with one line and nothing on disk changed; the line."""
    before = snapshot(ws)
    result = CliRunner().invoke(app, ["evaluate", *args, *[w for o in overrides(ws) for w in ("--set", o)]])
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert "\n" not in message and "Traceback" not in message, message
    assert snapshot(ws) == before
    return message


@pytest.mark.parametrize("fault", REFERENCE_FAULTS)
def test_a_damaged_or_foreign_fid_reference_is_refused_in_one_line(
    built: tuple[Path, Path], ws: Path, fault: str
) -> None:
    REFERENCE_FAULTS[fault](built, ws)
    assert "rerun `animegan fid-reference`" in refuses(ws)


@pytest.mark.parametrize("fault", DETECTOR_FAULTS)
def test_a_damaged_or_foreign_detector_is_refused_in_one_line(built: tuple[Path, Path], ws: Path, fault: str) -> None:
    DETECTOR_FAULTS[fault](built, ws)
    assert "rerun `animegan detector`" in refuses(ws)


def test_evaluate_images_refuses_too(built: tuple[Path, Path], ws: Path) -> None:
    REFERENCE_FAULTS["stats flipped"](built, ws)
    assert "rerun `animegan fid-reference`" in refuses(ws, "--images", str(ws / "folder"))


# ---------- the owning stage rebuilds; data changed outside dvc repro ----------


@pytest.fixture
def rebuilt_over(built: tuple[Path, Path], ws: Path) -> Iterator[Callable[[str], None]]:
    def check(stage: str) -> None:
        params = params_for(ws)
        {"copy_index": copy_index, "fid_reference": fid_reference, "detector": detector}[stage].execute(params)
        assert read_manifest(ws / stage) is not None
        evaluate.execute(params)

    yield check


def test_each_owning_stage_rebuilds_over_a_damaged_cache(built, ws: Path, rebuilt_over) -> None:
    COPY_FAULTS["index truncated"](built, ws)
    REFERENCE_FAULTS["stats flipped"](built, ws)
    rebuilt_over("fid_reference")  # evaluate after it: the copy index still damaged, recomputed
    rebuilt_over("copy_index")
    assert numbers(ws / "metrics/eval.json", ws) == clean_numbers(built)
    DETECTOR_FAULTS["trained on other faces"](built, ws)
    rebuilt_over("detector")
    again = json.loads((ws / "metrics/eval.json").read_text())
    assert again["provenance"]["detector"]["name"] == "anime" and 0 <= again["afd_real"] <= 1
    with np.load(ws / "copy_index/copy_index.npz") as mine, np.load(built[0] / "copy_index/copy_index.npz") as z:
        assert all(np.array_equal(mine[k], z[k]) for k in z.files)  # rebuilt as it was


def test_a_copy_index_of_the_previous_format_is_rebuilt(built: tuple[Path, Path], ws: Path, caplog) -> None:
    """Made before manifests (meta.json beside the files, no manifest.json): evaluate recomputes with a warning,
    and the stage replaces the folder instead of refusing it for holding a file it no longer writes."""
    folder = ws / "copy_index"
    (folder / MANIFEST_FILE).rename(folder / "meta.json")
    run_evaluate_expecting_a_warning(ws, caplog, "no manifest.json")
    copy_index.execute(params_for(ws))
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in (built[0] / "copy_index").iterdir())
    assert numbers(ws / "metrics/eval.json", ws) == clean_numbers(built)


def test_faces_changed_outside_dvc_repro(built: tuple[Path, Path], ws: Path, caplog) -> None:
    """A new clean (another face set of the same size) and fid-reference run by hand: evaluate refuses the
    detector trained on the old faces; with the mtcnn detector it recomputes the stale copy index with a warning
    and gives the numbers of a run whose copy_index stage was rerun too."""
    shutil.copyfile(built[1] / "clean/faces.npy", ws / "clean/faces.npy")
    fid_reference.execute(params_for(ws))
    message = refuses(ws)
    assert "anime detector unusable" in message and "made from other data_sha256" in message
    mtcnn = "eval.afd.detector=mtcnn"
    with caplog.at_level(logging.WARNING):
        evaluate.execute(params_for(ws, mtcnn))
    assert "made from other data_sha256" in caplog.text and "computing the copy index" in caplog.text
    recomputed = (ws / "metrics/eval.json").read_text()
    copy_index.execute(params_for(ws, mtcnn))
    evaluate.execute(params_for(ws, mtcnn))
    assert (ws / "metrics/eval.json").read_text() == recomputed
