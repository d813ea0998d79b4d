"""The notebook's BUDGET: a Run all whose training stops at the time budget ends cleanly (no failed cell), says how
far it got and how to continue, shows the curves so far and no submission; the next Run all resumes and finishes.

Executed by nbclient as tests/notebooks/test_notebook.py does (its helpers: a git copy of this project as REPO_URL,
generated faces as DATA_URL, the demo's small settings). BUDGET = 1e-05 minutes is spent before the first training
step ends: nothing mocks the clock.
"""

from __future__ import annotations

import json

import pytest
from test_notebook import demo_settings, kernel_env, needs_tools, notebook, project_repo, run_all

from pipeline.core.config import load_params
from pipeline.data.cartoon import write_faces_zip

pytestmark = pytest.mark.slow
EPOCHS, STEPS_PER_EPOCH = 1, 9


def test_run_all_stopped_by_its_budget_ends_cleanly_and_the_next_run_all_finishes(tmp_path, monkeypatch):
    needs_tools()
    origin = project_repo(tmp_path / "origin")
    faces = write_faces_zip(tmp_path / "faces.zip", count=300, size=48, seed=0)
    workdir, here = tmp_path / "platform" / "animegan", tmp_path / "notebook-folder"
    here.mkdir()
    settings = [s for s in demo_settings() if not s.startswith("train.log_every=")] + ["train.log_every=1"]  # a curve
    overrides = {"EPOCHS": EPOCHS, "DATA_URL": faces.as_uri(), "WORKDIR": str(workdir), "REPO_URL": str(origin),
                 "SETTINGS": settings, "BUDGET": 1e-05}  # fmt: skip
    kernel_env(monkeypatch, workdir)

    text, kinds, _ = run_all(notebook(overrides), here, tmp_path / "stopped.ipynb")  # no cell fails
    assert f"baseline: stopped at the time budget after step 1 of {STEPS_PER_EPOCH} (32 images seen, " in text
    assert "Run all again to continue" in text and "no submission.tgz yet" in text
    assert "image/svg+xml" in kinds and "image/png" not in kinds  # the curves so far; no samples yet
    assert not (here / "submission.tgz").exists() and not (workdir / "models" / "generator.pt").exists()
    params = load_params(workdir / "params.yaml").train
    assert params.processes == "auto" and params.max_minutes == 1e-05  # as the notebook set them

    text, kinds, _ = run_all(notebook({**overrides, "BUDGET": 0}), here, tmp_path / "finished.ipynb")
    assert f"baseline: resuming from step 1 of {STEPS_PER_EPOCH}" in text
    assert {"image/png", "image/svg+xml"} <= kinds and "fid" in text
    assert (here / "submission.tgz").is_file()
    train = json.loads((workdir / "metrics" / "train.json").read_text())
    assert train["steps"] == STEPS_PER_EPOCH and train["resumed_from_step"] == 1 and "stopped" not in train
