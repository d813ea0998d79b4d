"""A real DVC project in a temp dir: `dvc repro clean` builds download + clean, and a second repro does nothing;
the same from a read-only folder of images as the source (Kaggle's layout), which DVC's cache never touches.

The project is this repo's dvc.yaml, params.yaml (data.url pointed at a small zip through file://) and a copy of
pipeline/ and stages/, so the code deps resolve and PYTHONPATH makes the stage commands run that copy. Nothing is
mocked: real git, real dvc, the real `animegan` command.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from pipeline.data.cartoon import write_faces_zip

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: dvc and animegan live beside python

pytestmark = pytest.mark.slow
FACES = 12  # enough for the detector stage to hold out and calibrate on a few


def sh(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def outputs(project: Path) -> dict[str, int]:
    """Every file the pipeline wrote (and dvc.lock), with its mtime in ns."""
    found = {}
    for top in ("data", "metrics", "plots", "dvc.lock"):
        p = project / top
        for f in [p] if p.is_file() else sorted(p.rglob("*")):
            if f.is_file():
                found[str(f.relative_to(project))] = f.stat().st_mtime_ns
    return found


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    if not (BIN / "dvc").exists() or not (BIN / "animegan").exists() or shutil.which("git") is None:
        pytest.skip("needs git, and dvc + animegan installed in the venv running the tests")
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("pipeline", "stages"):
        shutil.copytree(REPO / name, proj / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", proj / "dvc.yaml")
    zip_path = write_faces_zip(tmp_path / "faces.zip", count=FACES, size=48, seed=3)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["url"] = zip_path.as_uri()
    params["data"]["sha256"] = ""
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    env = os.environ | {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(proj),
        "ANIMEGAN_PROGRESS": "0",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
    }  # fmt: skip
    sh(["git", "init", "-q"], proj, env)
    sh([str(BIN / "dvc"), "init", "-q"], proj, env)
    shutil.copy(REPO / ".dvcignore", proj / ".dvcignore")  # what a clone of the project has
    return proj, env


def test_dvc_repro_twice_second_is_a_no_op(project):
    proj, env = project
    dvc = str(BIN / "dvc")

    first = sh([dvc, "repro", "clean"], proj, env)
    assert "Running stage 'download'" in first and "Running stage 'clean'" in first
    assert (proj / "data" / "raw" / "SOURCE.json").is_file()
    assert (proj / "data" / "clean" / "faces.npy").is_file()
    assert (proj / "data" / "clean" / "manifest.jsonl").is_file()
    assert (proj / "plots" / "clean_preview.png").is_file()
    metrics = yaml.safe_load((proj / "metrics" / "data.json").read_text())
    assert metrics["kept"] == FACES and metrics["source"]["url"].startswith("file://")
    before = outputs(proj)

    second = sh([dvc, "repro", "clean"], proj, env)
    assert "Running stage" not in second
    assert "Stage 'download' didn't change" in second and "Stage 'clean' didn't change" in second
    assert "up to date" in sh([dvc, "status", "clean"], proj, env)  # clean and its upstream download
    assert outputs(proj) == before  # nothing rewritten, not even touched


def test_changing_a_clean_param_reruns_clean_only(project):
    proj, env = project
    dvc = str(BIN / "dvc")
    sh([dvc, "repro", "clean"], proj, env)
    raw_before = {k: v for k, v in outputs(proj).items() if k.startswith("data/raw/")}

    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["data"]["image_size"] = 32
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = sh([dvc, "repro", "clean"], proj, env)

    assert "Stage 'download' didn't change" in out and "Running stage 'clean'" in out
    assert {k: v for k, v in outputs(proj).items() if k.startswith("data/raw/")} == raw_before
    metrics = yaml.safe_load((proj / "metrics" / "data.json").read_text())
    assert metrics["shape"] == [FACES, 32, 32, 3]


def test_a_training_change_reruns_neither_the_copy_index_nor_the_detector(project):
    # what depends only on the clean faces is cached by its own stage: evaluate after retraining pays only for
    # the images it scores (issue 18)
    proj, env = project
    dvc = str(BIN / "dvc")
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["detector"].update(epochs=1, batch_size=4, holdout=0.34, calibration=0.34)
    params["eval"]["afd"]["real_count"] = 2
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    first = sh([dvc, "repro", "copy_index", "detector"], proj, env)
    assert "Running stage 'copy_index'" in first and "Running stage 'detector'" in first
    assert (proj / "data" / "copy_index" / "copy_index.npz").is_file()
    assert (proj / "data" / "copy_index" / "calibration.json").is_file()
    assert (proj / "models" / "detector" / "afd_real.json").is_file()
    before = outputs(proj)

    params["train"]["lr_g"] = 1e-4
    params["train"]["epochs"] = 3
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "up to date" in sh([dvc, "status", "copy_index", "detector"], proj, env)
    again = sh([dvc, "repro", "copy_index", "detector"], proj, env)
    assert "Running stage" not in again
    assert "Stage 'copy_index' didn't change" in again and "Stage 'detector' didn't change" in again
    assert outputs(proj) == before


def tree_state(folder: Path) -> dict[str, tuple]:
    """Every entry under `folder` with its bytes' hash, mtime (ns) and mode: equal means untouched."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir",
                                         p.stat().st_mtime_ns, p.stat().st_mode)
            for p in [folder, *sorted(folder.rglob("*"))]}  # fmt: skip


def test_a_read_only_folder_source_through_dvc_repro(project, tmp_path):
    proj, env = project
    dvc = str(BIN / "dvc")
    dataset = tmp_path / "input" / "anime-faces"  # as Kaggle unpacks an uploaded zip: <dataset>/faces/<n>.jpg
    with zipfile.ZipFile(write_faces_zip(tmp_path / "src.zip", count=FACES, size=48, seed=4)) as zf:
        zf.extractall(dataset)
    images = {p.name: p.read_bytes() for p in (dataset / "faces").iterdir()}
    every = [*sorted(dataset.rglob("*"), reverse=True), dataset]
    for p in every:  # chmod -w (root may write anyway: the state comparison below is the proof)
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    before = tree_state(dataset)
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["data"]["url"] = str(dataset)
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        first = sh([dvc, "repro", "clean"], proj, env)
        assert "Running stage 'download'" in first and "Running stage 'clean'" in first
        metrics = yaml.safe_load((proj / "metrics" / "data.json").read_text())
        lines = "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in sorted(images.items()))
        assert metrics["kept"] == FACES and metrics["source"]["url"] == str(dataset)
        assert metrics["source"]["sha256"] == hashlib.sha256(lines.encode()).hexdigest()
        for name in images:  # copies, not links: DVC making its cache read-only cannot reach the source
            assert (proj / "data" / "raw" / "faces" / name).stat().st_ino != (dataset / "faces" / name).stat().st_ino
        again = sh([dvc, "repro", "clean"], proj, env)
        assert "Running stage" not in again and "Stage 'download' didn't change" in again
        assert tree_state(dataset) == before
    finally:
        for p in every:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
