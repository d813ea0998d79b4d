"""A real git + DVC project in a temp dir for tests/train: this repo's code, dvc.yaml cut to the stages asked, and
params.yaml with data.url at a zip of generated faces and SMALL settings (16 px faces, tiny models, 4 steps).

Usage (from a test):
    from dvc_project import SMALL, dvc_project, set_params, run
    from workspace_weights import weights_sha256
    proj, env = dvc_project(tmp_path, ("download", "clean", "train"), "train.processes=2")
    done = run(["dvc", "repro"], proj, env)        # CompletedProcess, never raises
    weights_sha256(proj / "models" / "generator.pt")

Nothing is mocked: real git, the venv's dvc and the real `animegan` command, which imports the copied code through
PYTHONPATH. Every process runs torch on one thread and sees no GPU (train_helpers.SUBPROCESS_ENV).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from train_helpers import REPO, SUBPROCESS_ENV

from pipeline.core.config import apply_override
from pipeline.data.cartoon import write_faces_zip

BIN = Path(sys.executable).parent
FACES = 96  # 12 steps an epoch at batch 8
SMALL = ["data.image_size=16", "train.dcgan.g_features=8", "train.dcgan.d_features=8", "train.batch_size=8",
         "train.grid_size=4", "train.log_every=1", "train.max_steps=4", "sample.count=8"]  # fmt: skip
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@localhost"}  # fmt: skip


def dvc_project(tmp_path: Path, stages: tuple[str, ...], *overrides: str) -> tuple[Path, dict[str, str]]:
    if not (BIN / "dvc").exists() or not (BIN / "animegan").exists() or shutil.which("git") is None:
        pytest.skip("needs git, and dvc + animegan installed in the venv running the tests")
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("pipeline", "stages"):
        shutil.copytree(REPO / name, proj / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".dvcignore", proj / ".dvcignore")
    (proj / "dvc.yaml").write_text(yaml.safe_dump(trimmed_pipeline(stages), sort_keys=False))
    faces = write_faces_zip(tmp_path / "faces.zip", count=FACES, size=48, seed=1)
    set_params(proj, f"data.url={faces.as_uri()}", *SMALL, *overrides, source=REPO / "params.yaml")
    env = SUBPROCESS_ENV | GIT_ENV | {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                                      "PYTHONPATH": str(proj), "DVC_NO_ANALYTICS": "1"}  # fmt: skip
    commit_project(proj, env)
    return proj, env


def commit_project(proj: Path, env: dict[str, str]) -> None:
    """git init, dvc init and one commit of everything in proj."""
    for cmd in (["git", "init", "-q"], [str(BIN / "dvc"), "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "commit.gpgsign=false", "commit", "-qm", "project"]):  # fmt: skip
        subprocess.run(cmd, cwd=proj, env=env, check=True, capture_output=True)


def trimmed_pipeline(stages: tuple[str, ...]) -> dict:
    """The project's dvc.yaml with only these stages; a left-out stage's outputs are dropped from the kept stages'
    deps (train lists the FID reference and the detector for its snapshots, which these small runs leave off)."""
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    left_out = {str(next(iter(o)) if isinstance(o, dict) else o)
                for k, v in pipeline["stages"].items() if k not in stages for o in v.get("outs", [])}
    pipeline["stages"] = {k: v for k, v in pipeline["stages"].items() if k in stages}
    for stage in pipeline["stages"].values():
        stage["deps"] = [d for d in stage.get("deps", []) if d not in left_out]
    return pipeline


def set_params(proj: Path, *overrides: str, source: Path | None = None) -> None:
    """proj/params.yaml = source (default: itself) with the overrides applied."""
    raw = yaml.safe_load((source or proj / "params.yaml").read_text())
    for item in overrides:
        apply_override(raw, item)
    (proj / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
