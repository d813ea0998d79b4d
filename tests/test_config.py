"""Params loading is strict and typed; the CLI turns bad params into one line and exit code 2."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.core.config import load_params
from pipeline.core.errors import UserError

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


def test_numbers_as_people_write_them_are_accepted_for_float_fields_only(tmp_path):
    # PyYAML (YAML 1.1) reads 1e-4 without a dot as the text "1e-4"
    raw = yaml.safe_load(PARAMS.read_text())
    raw["train"]["lr_g"] = yaml.safe_load("1e-4")
    assert raw["train"]["lr_g"] == "1e-4"
    written = tmp_path / "params.yaml"
    written.write_text(PARAMS.read_text().replace("lr_g: 1.0e-4", "lr_g: 1e-4"))
    assert load_params(written).train.lr_g == 1e-4
    p = load_params(PARAMS, ["train.lr_d=2e-4", "train.ema=5E-1", "train.betas=[0, 9e-1]", "detector.lr=3e-3"])
    assert (p.train.lr_d, p.train.ema, p.train.betas, p.detector.lr) == (2e-4, 0.5, [0.0, 0.9], 3e-3)
    for override, needle in (("train.epochs=1e3", "valid integer"), ("train.lr_g=fast", "valid number"),
                             ("train.lr_g=-1e-4", "greater than 0")):
        with pytest.raises(UserError, match=needle):
            load_params(PARAMS, [override])


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("paths.detector=models", "paths.detector and paths.models are the same path"),
        ("paths.samples=data", "paths.samples (" ),
        ("paths.samples=.", "paths.samples and the project folder are the same path"),
        ("paths.clean=data", "paths.clean ("),
        ("paths.fid_reference=data/clean", "paths.clean and paths.fid_reference are the same path"),
        ("paths.submission=models/generator.pt", "paths.submission and paths.models/generator.pt are the same path"),
        ("paths.submission=models", "paths.submission and paths.models are the same path"),
        ("paths.metrics=samples/m", "paths.samples ("),
        ("paths.raw=plots/train", "paths.raw and paths.plots/train are the same path"),
    ],
)
def test_an_output_path_that_would_replace_another_is_refused(tmp_path, monkeypatch, override, needle):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as e:
        load_params(PARAMS, [override])
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_the_default_layout_and_separate_folders_are_valid(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    load_params(PARAMS)  # models/detector beside models/generator.pt, data/raw beside data/clean
    load_params(PARAMS, ["paths.samples=out/samples", "paths.detector=detector", "paths.metrics=plots"])


def test_cli_refuses_an_output_path_over_other_outputs_before_any_work(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "generator.pt").write_bytes(b"g")
    (models / "checkpoint.pt").write_bytes(b"c")
    for folder in ("raw/faces", "clean"):
        (tmp_path / "data" / folder).mkdir(parents=True)
    (tmp_path / "data" / "clean" / "faces.npy").write_bytes(b"faces")
    before = sorted((p.relative_to(tmp_path), p.read_bytes() if p.is_file() else None) for p in tmp_path.rglob("*"))
    for stage, override in (("detector", "paths.detector=models"), ("sample", "paths.samples=data")):
        done = subprocess.run([sys.executable, "-m", "stages.cli", stage, "--params", str(PARAMS), "--set", override],
                              capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        key = override.split("=")[0]
        assert len(done.stderr.strip().splitlines()) == 1 and key in done.stderr
    after = sorted((p.relative_to(tmp_path), p.read_bytes() if p.is_file() else None) for p in tmp_path.rglob("*"))
    assert after == before


def test_a_key_given_twice_in_one_section_is_refused_naming_both_lines(tmp_path):
    text = PARAMS.read_text()
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("  epochs:")) + 1
    lines.insert(first + 2, "  epochs: 30                # a second epochs line, as a merge of two branches leaves")
    path = tmp_path / "params.yaml"
    path.write_text("\n".join(lines) + "\n")
    cli = [sys.executable, "-m", "stages.cli", "train", "--params", str(path), "--dry-run"]
    done = subprocess.run(cli, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {path}: train.epochs is given twice (lines {first} and {first + 3}): keep one"
    ]
    # the same name in two sections is two keys
    assert load_params(PARAMS).eval.kid.seed == 0 and load_params(PARAMS).sample.seed == 0


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("r3gan_preset", "train.r3gan.preset"),
        ("critic_norm", "train.dcgan.critic_norm"),
        ("spectral_norm", "train.dcgan.spectral_norm"),
        ("g_features", "train.dcgan.g_features"),
        ("d_features", "train.dcgan.d_features"),
    ],
)
def test_a_flat_family_key_of_earlier_params_names_its_new_place(tmp_path, old, new):
    raw = yaml.safe_load(PARAMS.read_text())
    raw["train"][old] = raw["train"][new.split(".")[1]][new.split(".")[2]]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError) as e:
        load_params(path)
    assert str(e.value) == f"{path}: train.{old} is now {new} (each model family has its own section)"
    with pytest.raises(UserError) as e:
        load_params(PARAMS, [f"train.{old}=1"])
    assert str(e.value) == f"--set train.{old}: train.{old} is now {new} (each model family has its own section)"


def test_family_sections_load_as_given_and_a_non_mapping_unknown_key_is_still_refused(tmp_path):
    p = load_params(PARAMS, ["train.dcgan.g_features=32", "train.r3gan.preset=tiny"])
    assert p.train.dcgan.g_features == 32 and p.train.r3gan.preset == "tiny"
    with pytest.raises(UserError, match="unknown key 'train.dcgan.width'"):
        load_params(PARAMS, ["train.dcgan.width=3"])
    raw = yaml.safe_load(PARAMS.read_text())
    raw["train"]["stylegan"] = 3  # a section is a mapping: anything else is an unknown key
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError, match=r"train.stylegan: Extra inputs are not permitted \(got 3\)"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize(
    ("sync", "where", "name"),
    [
        ("samples", "samples", "paths.samples"),
        ("samples/drive", "samples", "paths.samples"),
        ("data", "data", "paths.raw"),
        ("data/sync", "data", "paths.raw"),
        ("models", "models", "paths.models"),
        ("models/sync", "models", "paths.models"),
        ("metrics", "metrics", "paths.metrics"),
        ("plots/sync", "plots", "paths.plots"),
        ("file://{root}/samples/x", "samples", "paths.samples"),
    ],
)
def test_a_sync_folder_in_the_workspace_outputs_is_refused(tmp_path, monkeypatch, sync, where, name):
    """DVC replaces an output folder whole (`dvc repro -s sample` deleted a synced folder inside samples/)."""
    monkeypatch.chdir(tmp_path)
    sync = sync.format(root=tmp_path)
    with pytest.raises(UserError) as e:
        load_params(PARAMS, [f"train.sync={sync}"])
    assert str(e.value).startswith(f"{PARAMS}: train.sync (") and "\n" not in str(e.value)
    assert f") lies in {tmp_path / where}, where {name} is written" in str(e.value)


def test_a_sync_folder_outside_the_outputs_or_a_store_is_accepted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for sync in ("drive/animegan", str(tmp_path.parent / "drive"), "s3://bucket/samples", "hf://datasets/me/models"):
        assert load_params(PARAMS, [f"train.sync={sync}"]).train.sync == sync
    moved = load_params(PARAMS, ["paths.samples=out/samples", "train.sync=samples"])  # samples/ is no output now
    assert moved.train.sync == "samples"


def test_cli_train_refuses_a_sync_folder_inside_samples_before_any_work(tmp_path):
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "1.jpg").write_bytes(b"jpeg")
    done = subprocess.run([sys.executable, "-m", "stages.cli", "train", "--params", str(PARAMS), "--set",
                           "train.sync=samples"], capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "train.sync" in done.stderr
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["samples", "samples/1.jpg"]
