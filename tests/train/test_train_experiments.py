"""The course's experiment presets: valid params, order-independent, and the CLI's dry run."""

import pytest
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


def test_cli_dry_run_prints_the_command_and_unknown_names_exit_2():
    runner = CliRunner()
    done = runner.invoke(app, ["exp", "wgan-gp", "--dry-run", "--set", "train.epochs=3"])
    assert done.exit_code == 0
    assert "dvc exp run -n wgan-gp -S train.loss=wgan-gp" in done.output and "-S train.epochs=3" in done.output
    done = runner.invoke(app, ["exp", "nope"])
    assert done.exit_code == 2 and "unknown experiment 'nope'" in done.output


def test_seed_names_the_experiment_and_the_next_preset_puts_the_course_seed_back():
    seeded = dvc_command("wgan-gp", seed=3)
    assert seeded[3:5] == ["-n", "wgan-gp-seed3"] and "train.seed=3" in seeded
    assert "train.seed=2022" in dvc_command("baseline")
    done = CliRunner().invoke(app, ["exp", "baseline", "--seed", "7", "--dry-run"])
    assert done.exit_code == 0 and "dvc exp run -n baseline-seed7 " in done.output and "train.seed=7" in done.output


def test_list_shows_every_preset_with_what_it_is_for():
    done = CliRunner().invoke(app, ["exp", "--list"])
    assert done.exit_code == 0
    lines = done.output.strip().splitlines()
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
