"""The time budget through real DVC: a train stage stopped by train.max_minutes is not recorded as done, so the next
`dvc repro` (or `animegan exp`) resumes it, and the run finishes bit-identical to one never stopped.

The budget, 1e-05 minutes, is spent before the first step ends (nothing mocks the clock): training stops after
step 1 of 4 and exits 75 (pipeline.core.errors.EXIT_STOPPED).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import yaml
from dvc_project import BIN, dvc_project, run, set_params
from workspace_weights import weights_sha256, workspace_from

from pipeline.core.errors import EXIT_STOPPED

pytestmark = pytest.mark.slow
TINY_BUDGET = "train.max_minutes=1e-05"


def locked_stages(proj) -> set[str]:
    lock = proj / "dvc.lock"
    return set(yaml.safe_load(lock.read_text())["stages"]) if lock.is_file() else set()


def test_dvc_repro_stopped_at_the_budget_leaves_train_undone_and_the_next_repro_finishes_it_bit_identical(tmp_path):
    proj, env = dvc_project(tmp_path, ("download", "clean", "train", "sample"), TINY_BUDGET)
    dvc = str(BIN / "dvc")
    done = run([dvc, "repro"], proj, env)
    assert done.returncode != 0, done.stdout[-2000:]
    assert "stopped at the time budget (train.max_minutes 1e-05) after step 1 of 4" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert locked_stages(proj) == {"download", "clean"}  # train (and sample after it) not recorded as done
    assert "train" in run([dvc, "status", "train"], proj, env).stdout
    state = torch.load(proj / "models" / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 1 and state["images_seen"] == 8 and state["wall_s"] > 0
    stopped = json.loads((proj / "metrics" / "train.json").read_text())
    assert stopped["stopped"] == "time budget" and stopped["steps"] == 1 and stopped["total_steps"] == 4

    set_params(proj, "train.max_minutes=0")  # not a DVC param (output-neutral): only when this process stops
    done = run([dvc, "repro"], proj, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from step 1 of 4" in done.stderr and "Stage 'clean' didn't change" in done.stdout
    assert locked_stages(proj) == {"download", "clean", "train", "sample"}
    finished = json.loads((proj / "metrics" / "train.json").read_text())
    assert finished["steps"] == 4 and finished["resumed_from_step"] == 1 and "stopped" not in finished

    straight = workspace_from(proj, tmp_path / "straight")
    done = subprocess.run([sys.executable, "-m", "stages.cli", "train"], cwd=straight, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert weights_sha256(proj / "models" / "generator.pt") == weights_sha256(straight / "models" / "generator.pt")

    set_params(proj, TINY_BUDGET)  # a finished run is not trained again, whatever the budget
    assert "Data and pipelines are up to date" in run([dvc, "status"], proj, env).stdout


def test_animegan_exp_says_where_the_budget_stopped_it_exits_75_saves_nothing_and_continues(tmp_path):
    proj, env = dvc_project(tmp_path, ("download", "clean", "train", "sample"))
    exp = [sys.executable, "-m", "stages.cli", "exp", "baseline", "--set", "train.batch_size=8"]  # over the preset's

    done = run([*exp, "--set", TINY_BUDGET], proj, env)
    assert done.returncode == EXIT_STOPPED, done.stdout[-2000:] + done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("baseline: stopped at the time budget after step 1 of 4 (8 images seen, ")
    assert last.endswith(": Run all again to continue (or `animegan exp` again here)")
    assert "Traceback" not in done.stderr and "train" not in locked_stages(proj)
    assert run([str(BIN / "dvc"), "exp", "list", "--name-only"], proj, env).stdout.split() == []  # nothing saved

    done = run([*exp, "--set", "train.max_minutes=0"], proj, env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "baseline: resuming from step 1 of 4" in done.stdout and "resuming from step 1 of 4" in done.stderr
    assert run([str(BIN / "dvc"), "exp", "list", "--name-only"], proj, env).stdout.split() == ["baseline"]
    assert json.loads((proj / "metrics" / "train.json").read_text())["steps"] == 4
