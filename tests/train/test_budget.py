"""train.max_minutes: at the budget the training checkpoints at the step boundary, says how far it got, and the next
run finishes bit-identical to one never stopped; a negative budget is one line and exit 2.

Nothing mocks the clock: a budget whose deadline has passed (Budget(..., deadline=0), or train.max_minutes=1e-05,
0.6 ms, spent before the first step ends) stops after the first step, because the budget is checked after each
step and at least one step always runs.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from train_helpers import SUBPROCESS_ENV, assert_same_tensors, checkpoint_of, tiny_params, train_tiny, write_faces

from pipeline.core.errors import EXIT_STOPPED
from pipeline.train.budget import Budget, stop_line
from pipeline.train.checkpoint import training_signature
from pipeline.train.generator_file import load_generator
from pipeline.train.resume import faces_digest
from pipeline.train.sync import SyncFolder

SPENT = Budget(max_minutes=1.0, deadline=0.0)  # its deadline long past: stops after the first step


def test_no_budget_for_0_or_null_and_a_budget_counts_from_its_start():
    assert Budget.from_minutes(0) is None and Budget.from_minutes(None) is None
    budget = Budget.from_minutes(1.5, started=1000.0)
    assert budget == Budget(1.5, 1090.0)
    assert Budget.from_minutes(2).deadline == pytest.approx(time.time() + 120, abs=5)


def test_a_spent_budget_checkpoints_after_the_first_step_and_the_rerun_equals_an_uninterrupted_run(tmp_path, faces):
    stopped, straight = tmp_path / "stopped", tmp_path / "straight"
    summary = train_tiny(stopped, faces, "train.checkpoint_every=3", make_log=None, budget=SPENT)
    assert summary["stopped"] == "time budget" and summary["steps"] == 1 and summary["total_steps"] == 4
    assert summary["images_seen"] == 8 and summary["wall_s"] > 0 and summary["max_minutes"] == 1.0
    state = checkpoint_of(stopped)  # written at step 1, though checkpoint_every is 3
    assert state["step"] == 1 and state["images_seen"] == 8 and 0 < state["wall_s"] <= summary["wall_s"]
    assert state["summary"] is None  # not finished: a later run resumes it, not "extends" it
    assert not (stopped / "models" / "generator.pt").exists()
    assert stop_line(summary).startswith("stopped at the time budget (train.max_minutes 1) after step 1 of 4 (8 "
                                         "images seen, ")  # fmt: skip

    resumed = train_tiny(stopped, faces, "train.checkpoint_every=3")
    assert resumed["resumed_from_step"] == 1 and resumed["steps"] == 4 and "stopped" not in resumed
    assert resumed["wall_s"] > summary["wall_s"] * 0.99  # the training seconds before the stop are counted in
    train_tiny(straight, faces, "train.checkpoint_every=3")
    for key in ("G", "D", "G_ema", "opt_g", "opt_d"):
        assert_same_tensors(checkpoint_of(stopped)[key], checkpoint_of(straight)[key], key)


def test_the_checkpoint_written_at_the_budget_is_published_to_train_sync(tmp_path, faces):
    url = str(tmp_path / "drive")  # a folder standing in for a mounted drive
    train_tiny(tmp_path / "A", faces, "train.checkpoint_every=3", f"train.sync={url}", budget=SPENT)
    params = tiny_params(tmp_path / "A", "train.checkpoint_every=3", f"train.sync={url}")
    signature = training_signature(params.train, params.data.image_size, faces_digest(faces), len(faces))
    pointer = SyncFolder.open(url, signature).pointer()  # the run's folder there: its newest verified checkpoint
    local = tmp_path / "A" / "models" / "checkpoint.pt"
    assert pointer["step"] == 1 and pointer["sha256"] == hashlib.sha256(local.read_bytes()).hexdigest()


def test_a_budget_not_reached_changes_nothing(tmp_path, faces):
    later = Budget.from_minutes(60)
    summary = train_tiny(tmp_path / "a", faces, budget=later)
    assert "stopped" not in summary and summary["steps"] == 4
    assert summary["generator_sha256"] == train_tiny(tmp_path / "b", faces)["generator_sha256"]


def test_the_last_step_ends_the_training_normally_even_past_the_budget(tmp_path, faces):
    summary = train_tiny(tmp_path, faces, "train.max_steps=1", budget=SPENT)
    assert "stopped" not in summary and summary["steps"] == 1
    assert (tmp_path / "models" / "generator.pt").is_file()


def animegan_train(root: Path, *sets: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "stages.cli", "train", "--params", str(root / "params.yaml")]
    cmd += [word for item in sets for word in ("--set", item)]
    return subprocess.run(cmd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)


def test_animegan_train_stops_at_the_budget_with_exit_75_and_one_line_then_continues(tmp_path, faces):
    params = tiny_params(tmp_path, "train.max_steps=3")
    write_faces(params, faces)
    done = animegan_train(tmp_path, "train.max_minutes=1e-05")
    assert done.returncode == EXIT_STOPPED, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("stopped at the time budget (train.max_minutes 1e-05) after step 1 of 3 (8 images seen, ")
    assert last.endswith("the checkpoint is written: run the same command again to continue")
    assert "Traceback" not in done.stderr
    metrics = json.loads((Path(params.paths.metrics) / "train.json").read_text())
    assert metrics["stopped"] == "time budget" and metrics["steps"] == 1 and metrics["total_steps"] == 3
    assert metrics["images_seen"] == 8 and metrics["wall_s"] > 0
    assert checkpoint_of(tmp_path)["step"] == 1 and not (Path(params.paths.models) / "generator.pt").exists()

    done = animegan_train(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from step 1 of 3" in done.stderr
    metrics = json.loads((Path(params.paths.metrics) / "train.json").read_text())
    assert metrics["steps"] == 3 and "stopped" not in metrics and metrics["resumed_from_step"] == 1
    assert load_generator(Path(params.paths.models) / "generator.pt")


@pytest.mark.parametrize("value", ["-1", "-0.5", "nope"])
def test_a_negative_budget_is_one_line_and_exit_2_and_writes_nothing(tmp_path, faces, value):
    params = tiny_params(tmp_path)
    write_faces(params, faces)
    done = animegan_train(tmp_path, f"train.max_minutes={value}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'params.yaml'}: train.max_minutes: "
        + ("Input should be a valid number" if value == "nope" else "Input should be greater than or equal to 0")
        + f" (got {value if value != 'nope' else repr(value)})"
    ]
    assert not Path(params.paths.models).exists() and not Path(params.paths.metrics).exists()
