"""notebooks/animegan.ipynb runs top to bottom on CPU, as a student's Run all would, and leaves its results.

The notebook is executed by nbclient in a real kernel (this venv's Python): it clones a git copy of this project
(its working tree, committed in a temp dir, standing in for REPO_URL), checks the device, runs `animegan exp
baseline` (the whole DVC pipeline) on generated cartoon faces served as DATA_URL, with the demo's small settings
and 2 epochs, then shows the grid, the curves and the metrics and copies submission.tgz into its working folder.
Not exercised: the `pip install -e .` cell's install (it would repoint this venv's editable install at the temp
copy; ANIMEGAN_NOTEBOOK_INSTALLED makes it use the installed animegan), Colab's Drive and a GPU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml
from demo_workspace import SAMPLE_COUNT, SMALL_EVAL
from nbclient import NotebookClient

from pipeline.data.cartoon import write_faces_zip

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "animegan.ipynb"
BIN = Path(sys.executable).parent
COPY = ("pipeline", "stages", "notebooks", "dvc.yaml", "params.yaml", "pyproject.toml", ".dvcignore", ".gitignore")
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@localhost"}  # fmt: skip

# The demo's settings, then smaller still: 300 faces, 2 epochs (18 steps), the tests' smaller scoring.
TINY = ["train.log_every=3", *SMALL_EVAL]

pytestmark = pytest.mark.slow


def flat(tree: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        if isinstance(value, dict):
            out += flat(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")
    return out


def project_repo(folder: Path) -> Path:
    """This working tree's project, committed in a fresh git + DVC repository (what REPO_URL would clone)."""
    for name in COPY:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, folder / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
        else:
            shutil.copy(src, folder / name)
    env = os.environ | GIT_ENV
    for cmd in (["git", "init", "-q"], [str(BIN / "dvc"), "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "project"]):  # fmt: skip
        subprocess.run(cmd, cwd=folder, env=env, check=True, capture_output=True)
    return folder


def test_notebook_runs_top_to_bottom_on_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("git") is None or not (BIN / "dvc").exists() or not (BIN / "animegan").exists():
        pytest.skip("needs git, and dvc + animegan installed in the venv running the tests")
    origin = project_repo(tmp_path / "origin")
    faces = write_faces_zip(tmp_path / "faces.zip", count=300, size=48, seed=0)
    workdir, here = tmp_path / "platform" / "animegan", tmp_path / "notebook-folder"
    here.mkdir()
    demo = yaml.safe_load((REPO / "stages" / "demo_params.yaml").read_text(encoding="utf-8"))["params"]
    demo["train"].pop("epochs")  # EPOCHS says it
    merged = dict(item.split("=", 1) for item in flat(demo) + TINY)  # TINY's value wins
    settings = [f"{key}={value}" for key, value in merged.items()]
    overrides = {"EPOCHS": 2, "DATA_URL": faces.as_uri(), "WORKDIR": str(workdir), "REPO_URL": str(origin),
                 "SETTINGS": settings}  # fmt: skip

    nb = nbformat.read(NOTEBOOK, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{k} = {v!r}" for k, v in overrides.items())  # as papermill injects parameters
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    kernel_env = {"ANIMEGAN_NOTEBOOK_INSTALLED": "1", "ANIMEGAN_PROGRESS": "0", "PYTHONPATH": str(workdir),
                  "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip
    for key, value in {**GIT_ENV, **kernel_env}.items():  # the kernel and the commands it starts inherit these
        monkeypatch.setenv(key, value)
    for key in ("COLAB_RELEASE_TAG", "COLAB_GPU", "KAGGLE_KERNEL_RUN_TYPE"):
        monkeypatch.delenv(key, raising=False)
    try:
        NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(here)}}).execute()
    finally:
        nbformat.write(nb, tmp_path / "executed.ipynb")  # to read when it fails

    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    kinds = {k for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) for k in o.get("data", {})}
    assert "device: auto -> cpu" in text and "dvc exp run -n baseline" in text
    assert {"image/png", "image/svg+xml"} <= kinds  # the sample grid and the training curves, inline
    assert "fid" in text and "afd_real" in text  # the metrics table

    metrics = workdir / "metrics"
    train = json.loads((metrics / "train.json").read_text())
    assert train["epochs"] == 2 and train["device"].startswith("cpu")
    for name in ("sample.json", "detector.json"):
        assert json.loads((metrics / name).read_text())["device"] == "cpu"
    assert json.loads((metrics / "eval.json").read_text())["provenance"]["device"] == "cpu"
    assert (workdir / "plots" / "samples_grid.png").is_file()
    with tarfile.open(here / "submission.tgz") as tar:  # left where "elsewhere" downloads: the notebook's folder
        names = tar.getnames()
    assert len(names) == SAMPLE_COUNT and all(n.endswith(".jpg") for n in names)
