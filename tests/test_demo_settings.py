"""`python -m stages.demo --set KEY=VALUE`: the demo's own overrides (tests/test_demo.py runs a shorter demo so)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.core.errors import UserError
from stages.demo import CODE_DIRS, CODE_FILES, commit_all, git, write_params

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("setting", ["train.epochs=3", "eval.repeats=2"])
def test_demo_set_overrides_the_demo_params(tmp_path: Path, setting: str) -> None:
    """`python -m stages.demo --set KEY=VALUE` lands in the workspace's params.yaml after demo_params.yaml."""
    demo = yaml.safe_load((REPO / "stages" / "demo_params.yaml").read_text())["params"]
    key, value = setting.split("=")
    params = write_params(tmp_path, demo, tmp_path / "faces.zip", [setting])
    section, name = key.split(".")
    assert getattr(getattr(params, section), name) == int(value)
    written = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert written[section][name] == int(value) and written["data"]["image_size"] == demo["data"]["image_size"]
    with pytest.raises(UserError, match="unknown key"):
        write_params(tmp_path, demo, tmp_path / "faces.zip", ["train.no_such_key=1"])


def test_code_commit_leaves_outputs_of_a_killed_demo_to_dvc(tmp_path: Path) -> None:
    """A demo killed mid-stage leaves that stage's outputs before DVC ignores them; the next run's code commit must
    not put them in git, or `dvc repro` refuses them ("already tracked by SCM") in every later run."""
    env = dict(os.environ)
    git(tmp_path, env, "init", "-q")
    for rel in (*CODE_FILES, "params.yaml", "pipeline/core/x.py", "stages/x.py", "samples/1.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel, encoding="utf-8")
    commit_all(tmp_path, env, "code", only=(*CODE_FILES, "params.yaml", *CODE_DIRS))
    tracked = subprocess.run(["git", "ls-files"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert sorted(tracked.split()) == sorted([*CODE_FILES, "params.yaml", "pipeline/core/x.py", "stages/x.py"])
