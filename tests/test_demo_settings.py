"""`python -m stages.demo --set KEY=VALUE`: the demo's own overrides (tests/test_demo.py runs a shorter demo so)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.core.errors import UserError
from stages.demo import write_params

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
