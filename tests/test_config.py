"""Params loading is strict and typed; the CLI turns bad params into one line and exit code 2."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import load_params
from pipeline.errors import UserError

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"


def test_repo_params_load_and_keep_the_course_defaults():
    p = load_params(PARAMS)
    assert p.data.image_size == 64 and p.train.z_dim == 100 and p.train.batch_size == 64
    assert p.train.seed == 2022 and p.sample.count == 1000
    assert p.data.url.endswith("/faces.zip")


def test_override_gets_yaml_types():
    p = load_params(PARAMS, ["train.epochs=10", "train.betas=[0.0, 0.9]", "data.sha256="])
    assert p.train.epochs == 10 and p.train.betas == [0.0, 0.9] and p.data.sha256 == ""


def test_override_of_a_text_key_keeps_the_text_as_written():
    digits = "1234567890" * 6 + "0123"  # a sha256 that happens to be all digits reads as an int in YAML
    p = load_params(PARAMS, [f"data.sha256={digits}", "data.url=2022"])
    assert p.data.sha256 == digits and p.data.url == "2022"


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("train.epochs=1.5", "train.epochs: Input should be a valid integer"),
        ("train.lr_g=-1", "train.lr_g: Input should be greater than 0"),
        ("train.loss=vae", "train.loss: Input should be"),
        ("data.sha256=abc", "data.sha256: String should match pattern"),
        ("train.bf16=maybe", "train.bf16: Input should be 'cuda', 'always' or 'never'"),
        ("train.nope=1", "unknown key 'train.nope'"),
        ("nokey", "expected key.sub=value"),
    ],
)
def test_bad_values_name_the_key(override, needle):
    with pytest.raises(UserError, match=None) as e:
        load_params(PARAMS, [override])
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_unknown_key_in_file_and_missing_file(tmp_path):
    raw = yaml.safe_load(PARAMS.read_text())
    raw["train"]["learning_rate"] = 0.1
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError, match="train.learning_rate: Extra inputs are not permitted"):
        load_params(bad)
    with pytest.raises(UserError, match="params file not found"):
        load_params(tmp_path / "missing.yaml")


def test_cli_bad_param_is_one_line_exit_2_and_dry_run_prints_resolved(tmp_path):
    cli = [sys.executable, "-m", "stages.cli"]
    bad = subprocess.run([*cli, "clean", "--params", str(PARAMS), "--set", "train.epochs=0"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"error: {PARAMS}: train.epochs: Input should be greater than 0 (got 0)"
    ]
    dry = subprocess.run([*cli, "download", "--params", str(PARAMS), "--set", "data.image_size=32", "--dry-run"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert yaml.safe_load(dry.stdout)["data"]["image_size"] == 32
    assert not any(tmp_path.iterdir())  # a dry run writes nothing
