"""The course's experiment presets: valid params, order-independent, and the CLI's dry run."""

import pytest
from dvc_project import GIT_ENV, commit_project, trimmed_pipeline
from train_helpers import REPO
from typer.testing import CliRunner

from pipeline.core.config import load_params
from stages.cli import app
from stages.experiments import PRESETS, VARIANT_KEYS, dvc_command, preset_settings, push_command


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_is_valid_params_and_sets_every_variant_key(name):
    cmd = dvc_command(name)
    assert cmd[:5] == ["dvc", "exp", "run", "-n", name]
    sets = cmd[6::2]
    assert all(flag == "-S" for flag in cmd[5::2])
    assert {s.split("=")[0] for s in sets} >= set(VARIANT_KEYS) | {"train.on_mismatch"}
    params = load_params(REPO / "params.yaml", sets)  # every key exists and every value validates
    assert params.train.epochs == preset_settings(name)["train.epochs"]


def test_the_course_settings():
    assert preset_settings("baseline")["train.epochs"] == 1
    assert preset_settings("ncritic2")["train.n_critic"] == 2 and preset_settings("ncritic2")["train.epochs"] == 50
    assert preset_settings("wgan")["train.optimizer"] == "rmsprop"
    assert preset_settings("wgan-gp")["train.dcgan.critic_norm"] == "instance"


def test_cli_dry_run_prints_the_steps_and_unknown_names_exit_2():
    """The steps of `dvc exp run -n NAME -S ...` that continue an existing run (see stages/experiments.py)."""
    runner = CliRunner()
    done = runner.invoke(app, ["exp", "wgan-gp", "--dry-run", "--set", "train.epochs=3"])
    assert done.exit_code == 0
    lines = done.output.splitlines()
    assert lines[0].startswith("set params.yaml as dvc exp run -S does: -S train.loss=wgan-gp ")
    assert lines[0].endswith(" -S train.on_mismatch=restart -S train.epochs=3")  # the user's sets last: they win
    assert lines[1:] == ["dvc repro", "dvc exp save -n wgan-gp -f"]
    done = runner.invoke(app, ["exp", "nope"])
    assert done.exit_code == 2 and "unknown experiment 'nope'" in done.output


def test_seed_names_the_experiment_and_the_next_preset_puts_the_course_seed_back():
    seeded = dvc_command("wgan-gp", seed=3)
    assert seeded[3:5] == ["-n", "wgan-gp-seed3"] and "train.seed=3" in seeded
    assert "train.seed=2022" in dvc_command("baseline")
    done = CliRunner().invoke(app, ["exp", "baseline", "--seed", "7", "--dry-run"])
    assert done.exit_code == 0 and "dvc exp save -n baseline-seed7 -f" in done.output and "train.seed=7" in done.output


def test_list_shows_every_preset_with_what_it_is_for():
    done = CliRunner().invoke(app, ["exp", "--list"])
    assert done.exit_code == 0
    header, *lines = done.output.strip().splitlines()
    assert header.startswith("preset ") and "estimates" in header  # tests/train/test_preset_cost.py: the figures
    assert [line.split()[0] for line in lines] == list(PRESETS)
    assert all(len(line.split(maxsplit=1)[1]) > 20 for line in lines)  # a purpose, not the settings dict
    purpose = dict(line.split(maxsplit=1) for line in lines)
    assert "for a GPU" in purpose["r3gan"] and "for a CPU" in purpose["r3gan-tiny"]


def test_r3gan_presets_carry_the_papers_recipe():
    for name in ("r3gan", "r3gan-tiny"):
        params = load_params(REPO / "params.yaml", dvc_command(name)[6::2]).train
        assert params.model == "r3gan" and params.loss == "rpgan" and params.betas[0] == 0.0 and params.flip
        assert params.gamma > params.gamma_end > 0 and params.lr_g_end < params.lr_g and params.beta2_end == 0.99
    assert load_params(REPO / "params.yaml", dvc_command("r3gan")[6::2]).train.r3gan.preset == "paper"
    course = load_params(REPO / "params.yaml", dvc_command("baseline")[6::2]).train
    assert course.model == "dcgan" and not course.flip and course.gamma == 0 and course.ema_kimg == 0
def test_push_pushes_the_named_run_and_only_its_ref_without_a_dvc_remote(tmp_path, monkeypatch):
    assert push_command("wgan-seed2", "origin", "store") == ["dvc", "exp", "push", "origin", "wgan-seed2"]
    assert push_command("wgan", "origin", None)[-1] == "--no-cache"
    monkeypatch.chdir(tmp_path)  # no DVC repository, so no default DVC remote
    done = CliRunner().invoke(app, ["exp", "wgan", "--seed", "2", "--push", "origin", "--dry-run"])
    assert done.exit_code == 0 and "dvc exp push origin wgan-seed2 --no-cache" in done.output
    assert "no default DVC remote" in done.output


def test_queue_only_queues_and_refuses_push():
    assert dvc_command("wgan", seed=2, queue=True)[-1] == "--queue"
    runner = CliRunner()
    done = runner.invoke(app, ["exp", "wgan", "--seed", "2", "--queue", "--dry-run"])
    assert done.exit_code == 0 and "dvc exp run -n wgan-seed2 " in done.output and " --queue" in done.output
    done = runner.invoke(app, ["exp", "wgan", "--queue", "--push", "origin"])
    assert done.exit_code == 2 and "--push needs a finished run" in done.output


def test_without_a_git_identity_exp_is_one_line_and_exit_2(tmp_path):
    """A fresh Debian, Colab or Kaggle machine has no git user: dvc exp run would refuse mid-way, after its set-up."""
    import os
    import subprocess
    import sys

    from pipeline.runs.git_identity import missing_identity

    repo = tmp_path / "clone"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    bare = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env = bare | {"HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1", "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    done = subprocess.run([sys.executable, "-m", "stages.cli", "exp", "baseline"], cwd=repo, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and not (repo / "dvc.lock").exists()
    assert done.stderr.strip().splitlines()[-1].startswith("error: dvc exp run commits each experiment and git has "
                                                          "no user.name or user.email here")  # fmt: skip
    assert "Traceback" not in done.stderr
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL"):
            mp.delenv(name, raising=False)
        assert missing_identity(repo) == ["user.name", "user.email"]
        mp.setenv("GIT_AUTHOR_NAME", "student")  # what the notebook sets
        assert missing_identity(repo) == ["user.email"]
        subprocess.run(["git", "config", "user.email", "s@example.com"], cwd=repo, check=True)
        assert missing_identity(repo) == []


# train.snapshot_kimg=0: the GPU presets score snapshots, and this cut pipeline has no FID reference to score them by
SMALL = ["data.image_size=32", "train.batch_size=16", "train.z_dim=16", "train.dcgan.g_features=8",
         "train.dcgan.d_features=8", "train.log_every=2", "train.grid_size=4", "sample.count=8",
         "train.snapshot_kimg=0"]  # fmt: skip
KEPT_STAGES = ("download", "clean", "train", "sample")


def _exp_project(tmp_path):
    """A real git + DVC project in a temp dir: this repo's code and params.yaml, data.url at 96 generated faces, and
    dvc.yaml cut to download -> clean -> train -> sample (the scoring stages cost minutes and change nothing here)."""
    import os
    import shutil
    import sys
    from pathlib import Path

    import yaml

    from pipeline.data.cartoon import write_faces_zip

    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "dvc").exists() or not (bin_dir / "animegan").exists() or shutil.which("git") is None:
        pytest.skip("needs git, and dvc + animegan installed in the venv running the tests")
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("pipeline", "stages"):
        shutil.copytree(REPO / name, proj / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".dvcignore", proj / ".dvcignore")
    (proj / "dvc.yaml").write_text(yaml.safe_dump(trimmed_pipeline(KEPT_STAGES), sort_keys=False))
    params = (REPO / "params.yaml").read_text()
    faces = write_faces_zip(tmp_path / "faces.zip", count=96, size=48, seed=1)
    params = params.replace(yaml.safe_load(params)["data"]["url"], faces.as_uri(), 1)
    (proj / "params.yaml").write_text(params)
    env = os.environ | GIT_ENV | {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                                  "PYTHONPATH": str(proj), "ANIMEGAN_PROGRESS": "0", "DVC_NO_ANALYTICS": "1"}
    commit_project(proj, env)
    return proj, env


def _animegan_exp(proj, env, *args):
    import subprocess
    import sys

    sets = [word for item in SMALL for word in ("--set", item)]
    done = subprocess.run([sys.executable, "-m", "stages.cli", "exp", *args, *sets], cwd=proj, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def _sha256(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_exp_twice_continues_the_experiment_instead_of_refusing_it(tmp_path):
    """`animegan exp baseline` twice: both exit 0, the second trains nothing and says so; another preset in between
    and baseline again: its outputs come back (dvc exp apply), nothing retrained; more epochs extend it."""
    import subprocess

    proj, env = _exp_project(tmp_path)
    generator = proj / "models" / "generator.pt"
    before = (proj / "params.yaml").read_bytes()
    code, out = _animegan_exp(proj, env, "baseline", "--set", "train.nope=1")
    assert code == 2 and "Traceback" not in out
    assert out.strip().splitlines()[-1] == "error: --set train.nope: unknown key 'train.nope'"
    assert (proj / "params.yaml").read_bytes() == before and not (proj / "dvc.lock").exists()

    code, out = _animegan_exp(proj, env, "baseline")
    assert code == 0, out
    assert "baseline: starting a new run (1 epochs)" in out and "Running stage 'train'" in out
    first = _sha256(generator)
    saved = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=proj, env=env,
                           capture_output=True, text=True).stdout.split()  # fmt: skip
    baseline_ref = next(r for r in saved if r.endswith("/baseline"))
    files = subprocess.run(["git", "ls-tree", "-r", "--name-only", baseline_ref], cwd=proj, capture_output=True,
                           text=True).stdout.split()  # fmt: skip
    assert {"dvc.lock", "params.yaml", "metrics/train.json", "metrics/sample.json"} <= set(files)  # as exp run saves

    code, out = _animegan_exp(proj, env, "baseline")
    assert code == 0, out
    assert "baseline: finished earlier, showing its results" in out and "Running stage" not in out
    assert _sha256(generator) == first

    code, out = _animegan_exp(proj, env, "ncritic2", "--set", "train.epochs=1")
    assert code == 0, out
    assert "ncritic2: settings changed since its checkpoint (train.n_critic: 1 -> 2)" in out
    assert _sha256(generator) != first

    code, out = _animegan_exp(proj, env, "baseline")  # another experiment's outputs are here: baseline's come back
    assert code == 0, out
    assert "dvc exp apply baseline" in out and "baseline: finished earlier, showing its results" in out
    assert "Running stage" not in out and _sha256(generator) == first

    code, out = _animegan_exp(proj, env, "baseline", "--set", "train.epochs=2")
    assert code == 0, out
    assert "baseline: extending from 1 to 2 epochs (step 6 of 12)" in out and "resuming from step 6 of 12" in out
    listed = subprocess.run(["dvc", "exp", "list", "--name-only"], cwd=proj, env=env, capture_output=True, text=True)
    assert sorted(listed.stdout.split()) == ["baseline", "ncritic2"]


def test_exp_outside_the_project_or_with_a_bad_setting_is_one_line_and_exit_2(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "stages.cli", "exp", "baseline"], cwd=tmp_path, capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"error: {tmp_path} is not the project's folder (no dvc.yaml and .dvc/ here): cd into the clone first"
    ]


def test_queue_refuses_an_experiment_that_exists_in_one_line(tmp_path):
    """--queue runs in DVC's temp folders, where nothing continues: an existing name is refused before DVC starts.
    The experiment is a git ref where DVC keeps one (refs/exps/<HEAD>/<name>), made here with git itself."""
    import os
    import shutil
    import subprocess
    import sys

    if shutil.which("git") is None:
        pytest.skip("needs git")
    env = os.environ | {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@localhost"}  # fmt: skip
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / ".dvc").mkdir()
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "commit.gpgsign=false", "commit", "-qm", "p"]):  # fmt: skip
        subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "update-ref", f"refs/exps/{head[:2]}/{head[2:]}/wgan-seed2", head], cwd=tmp_path, check=True)
    before = (tmp_path / "params.yaml").read_bytes()
    done = subprocess.run([sys.executable, "-m", "stages.cli", "exp", "wgan", "--seed", "2", "--queue"], cwd=tmp_path,
                          env=env | {"PYTHONPATH": str(REPO)}, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "error: experiment wgan-seed2 exists: `animegan exp wgan --seed 2` (without --queue) continues it here"
    ]
    assert (tmp_path / "params.yaml").read_bytes() == before
