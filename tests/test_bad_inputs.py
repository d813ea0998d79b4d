"""Bad files and values end in one line (exit 2) before any work, never a traceback: the clean faces array as
train, fid-reference and detector read it, the params file, and values each field accepts that no stage can run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.config import load_params
from pipeline.core.errors import UserError
from stages import detector, fid_reference
from stages import train as train_stage

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"


def good_faces() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)


def truncated(path: Path) -> None:
    np.save(path, good_faces())
    path.write_bytes(path.read_bytes()[:3000])


def random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(1).bytes(5000))


def wrong_shape(path: Path) -> None:
    np.save(path, good_faces()[..., 0])


def wrong_dtype(path: Path) -> None:
    np.save(path, good_faces().astype(np.float32))


def empty(path: Path) -> None:
    np.save(path, good_faces()[:0])


def npz_archive(path: Path) -> None:
    with open(path, "wb") as f:
        np.savez(f, faces=good_faces())


def stage_overrides(root: Path) -> list[str]:
    paths = ("clean", "models", "metrics", "plots", "detector", "fid_reference", "copy_index")
    return [f"paths.{k}={root / k}" for k in paths] + ["data.image_size=16", "eval.fid.weights=untrained"]


@pytest.mark.parametrize("spoil", [truncated, random_bytes, wrong_shape, wrong_dtype, empty, npz_archive])
@pytest.mark.parametrize("stage", [train_stage, fid_reference, detector], ids=["train", "fid_reference", "detector"])
def test_a_bad_clean_faces_file_is_one_line(tmp_path, stage, spoil):
    (tmp_path / "clean").mkdir()
    spoil(tmp_path / "clean" / "faces.npy")
    with pytest.raises(UserError, match=r"faces.npy .*rerun the clean stage") as e:
        stage.execute(load_params(PARAMS, stage_overrides(tmp_path)))
    assert "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean"]  # nothing written


def test_cli_bad_faces_file_exits_2_with_one_line(tmp_path):
    (tmp_path / "clean").mkdir()
    truncated(tmp_path / "clean" / "faces.npy")
    args = [a for o in stage_overrides(tmp_path) for a in ("--set", o)]
    done = subprocess.run([sys.executable, "-m", "stages.cli", "detector", "--params", str(PARAMS), *args],
                          capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "faces.npy is not a readable .npy array" in done.stderr


def test_params_file_not_utf8_or_a_folder_is_one_line(tmp_path):
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(PARAMS.read_bytes() + "# café\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1.yaml: not UTF-8 text .*save it as UTF-8"):
        load_params(latin1)
    with pytest.raises(UserError, match=r"is a folder, not a params file"):
        load_params(tmp_path)
    for params_arg in (str(latin1), str(tmp_path)):
        done = subprocess.run([sys.executable, "-m", "stages.cli", "clean", "--params", params_arg],
                              capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("train.batch_size=1", "train.batch_size: the generator's BatchNorm needs at least 2 images per batch"),
        ("sample.count=1", "sample.count: evaluate needs at least 2 images for FID"),
        ("eval.kid.subset_size=1", "eval.kid.subset_size: KID needs at least 2 images per subset"),
    ],
)
def test_values_the_schema_takes_but_no_stage_can_run_are_refused_when_params_load(override, needle):
    with pytest.raises(UserError, match=needle):
        load_params(PARAMS, [override])
    load_params(PARAMS, [override.replace("=1", "=2")])
