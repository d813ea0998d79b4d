"""train.resume_from: an earlier run's checkpoints, only read, resumed when they are the newest verified ones.

Real trainings in this process, real files: an earlier workspace (its models/checkpoint.pt) or an earlier train.sync
folder is made read-only (chmod -R a-w) and its full state (entries, bytes, mtimes, modes) compared before and after,
since the tests may run as root, where the permission stops nothing. tests/train/test_resume_kaggle.py runs the
same through the stages, on a Kaggle layout.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from folder_state import set_writable, tree_state
from train_helpers import assert_same_tensors, checkpoint_of, load_state, start_of, train_tiny

from pipeline.core.config import load_params
from pipeline.core.errors import UserError

pytestmark = pytest.mark.slow
EPOCHS = "train.epochs=10"  # 80 steps of 64 faces in batches of 8: train.max_steps decides


def train(root: Path, faces, *overrides: str) -> dict:
    return train_tiny(root, faces, EPOCHS, *overrides)


@pytest.fixture
def read_only() -> Iterator:
    """lock(folder): chmod -R a-w now, its state recorded; at teardown the state must be unchanged (then the write
    bits come back, so the temp folder can go)."""
    locked: list[tuple[Path, dict]] = []

    def lock(folder: Path) -> Path:
        set_writable(folder, False)
        locked.append((folder, tree_state(folder)))
        return folder

    yield lock
    for folder, before in locked:
        after = tree_state(folder)
        set_writable(folder, True)
        assert after == before, f"{folder} changed"


@pytest.fixture
def earlier(tmp_path, faces, read_only) -> Path:
    """An earlier workspace that trained 6 steps, read-only: its models/checkpoint.pt is the resume source."""
    train(tmp_path / "earlier", faces, "train.max_steps=6")
    return read_only(tmp_path / "earlier")


def test_an_earlier_checkpoint_continues_bit_identical_to_an_uninterrupted_run(tmp_path, faces, earlier, caplog):
    train(tmp_path / "straight", faces, "train.max_steps=10")
    for name, source in (("file", earlier / "models" / "checkpoint.pt"), ("models", earlier / "models"),
                         ("workspace", earlier)):  # fmt: skip
        with caplog.at_level(logging.INFO):
            summary = train(tmp_path / name, faces, "train.max_steps=10", f"train.resume_from={source}")
        assert summary["resumed_from_step"] == 6, name
        assert f"resuming from {earlier / 'models' / 'checkpoint.pt'} (step 6, train.resume_from)" in caplog.text
        for key in ("G", "D", "G_ema", "opt_g", "opt_d", "step"):
            assert_same_tensors(checkpoint_of(tmp_path / name)[key], checkpoint_of(tmp_path / "straight")[key], key)
        assert not list((tmp_path / name / "models").glob(".*.tmp"))  # the temporary beside it was renamed


def test_a_finished_earlier_run_is_shown_not_retrained(tmp_path, faces, earlier, caplog):
    """The earlier output finished the steps asked: the new workspace gets its generator and summary, no step runs."""
    finished = checkpoint_of(earlier)["summary"]
    with caplog.at_level(logging.INFO):
        summary = train(tmp_path / "b", faces, "train.max_steps=6", f"train.resume_from={earlier}")
    assert summary == finished and "training already finished at step 6: nothing to do" in caplog.text
    generator = load_state(tmp_path / "b" / "models" / "generator.pt")
    assert_same_tensors(generator, load_state(earlier / "models" / "generator.pt"), "generator.pt")


def test_the_local_checkpoint_when_it_is_as_new_or_newer(tmp_path, faces, earlier, caplog):
    train(tmp_path / "b", faces, "train.max_steps=8")  # this workspace went further than the earlier output
    local = (tmp_path / "b" / "models" / "checkpoint.pt").read_bytes()
    with caplog.at_level(logging.INFO):
        step, now = start_of(tmp_path / "b", faces, EPOCHS, "train.max_steps=10", f"train.resume_from={earlier}")
    assert (step, now) == (8, local)
    assert "the local checkpoint (step 8) is as new as" in caplog.text
    assert not list((tmp_path / "b" / "models").glob(".*.tmp"))


def test_the_newest_of_local_sync_and_resume_from_wins(tmp_path, faces, read_only, caplog):
    """train.sync holds step 4, train.resume_from (an earlier sync folder, read-only) step 6, the local none: 6;
    then a sync folder at step 8 beats the same resume_from."""
    drive, old = tmp_path / "drive", tmp_path / "old-drive"
    train(tmp_path / "a", faces, "train.max_steps=4", f"train.sync={drive}")
    train(tmp_path / "o", faces, "train.max_steps=6", f"train.sync={old}")
    read_only(old)
    with caplog.at_level(logging.INFO):
        step, _ = start_of(tmp_path / "b", faces, EPOCHS, "train.max_steps=10", f"train.sync={drive}",
                           f"train.resume_from={old}")  # fmt: skip
    assert step == 6 and "resuming from" in caplog.text and "checkpoint-000000006.pt" in caplog.text
    train(tmp_path / "c", faces, "train.max_steps=8", f"train.sync={drive}")
    both = ("train.max_steps=10", f"train.sync={drive}", f"train.resume_from={old}")
    step, _ = start_of(tmp_path / "d", faces, EPOCHS, *both)
    assert step == 8


def test_one_run_folder_of_the_sync_layout(tmp_path, faces, read_only):
    old = tmp_path / "old-drive"
    train(tmp_path / "o", faces, "train.max_steps=6", f"train.sync={old}")
    (run,) = read_only(old).iterdir()
    assert start_of(tmp_path / "b", faces, EPOCHS, "train.max_steps=10", f"train.resume_from={run}")[0] == 6


def test_a_truncated_newest_falls_back_to_the_previous_entry_with_one_warning(tmp_path, faces, read_only, caplog):
    old = tmp_path / "old-drive"
    train(tmp_path / "o", faces, "train.max_steps=6", f"train.sync={old}")  # checkpoints at 4 and 6
    (run,) = old.iterdir()
    newest = run / json.loads((run / "latest.json").read_text())["file"]
    newest.write_bytes(newest.read_bytes()[:5000])
    read_only(old)
    with caplog.at_level(logging.WARNING):
        assert start_of(tmp_path / "b", faces, EPOCHS, "train.max_steps=10", f"train.resume_from={old}")[0] == 4
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "is 5000 bytes, not" in warnings[0] and "falling back to step 4" in warnings[0]


def test_a_truncated_checkpoint_file_with_a_local_one_keeps_the_local_with_one_warning(
    tmp_path, faces, read_only, caplog
):  # fmt: skip
    train(tmp_path / "o", faces, "train.max_steps=6")
    cut = tmp_path / "o" / "models" / "checkpoint.pt"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    read_only(tmp_path / "o")
    train(tmp_path / "b", faces, "train.max_steps=4")
    local = (tmp_path / "b" / "models" / "checkpoint.pt").read_bytes()
    with caplog.at_level(logging.WARNING):
        assert start_of(tmp_path / "b", faces, EPOCHS, "train.max_steps=10", f"train.resume_from={cut}") == (4, local)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "is not a checkpoint this version reads" in warnings[0]
    assert "falling back to the local checkpoint (step 4)" in warnings[0]


@pytest.mark.parametrize("on_mismatch", ["refuse", "restart"])
def test_nothing_usable_and_nothing_else_refuses_whatever_on_mismatch(tmp_path, faces, read_only, on_mismatch, caplog):
    """A truncated file, or more steps than asked: the run was asked to continue, so it does not start over."""
    train(tmp_path / "o", faces, "train.max_steps=6")
    read_only(tmp_path / "o")
    with pytest.raises(UserError, match=r"train.resume_from .*: no checkpoint there that this training can continue "
                       r"\(the warning above says why\).*train.resume_from \"\" to start over") as e:  # fmt: skip
        train(tmp_path / "b", faces, "train.max_steps=4", f"train.resume_from={tmp_path / 'o'}",
              f"train.on_mismatch={on_mismatch}")  # fmt: skip
    assert "\n" not in str(e.value) and not (tmp_path / "b" / "models" / "checkpoint.pt").exists()
    assert "holds step 6, more than the 4 asked" in caplog.text


def test_only_other_params_leave_it_to_on_mismatch(tmp_path, faces, read_only, caplog):
    train(tmp_path / "seed7", faces, "train.max_steps=4", "train.seed=7")
    old = tmp_path / "old-drive"
    train(tmp_path / "s", faces, "train.max_steps=4", "train.seed=7", f"train.sync={old}")
    read_only(tmp_path / "seed7")
    read_only(old)
    for source in (tmp_path / "seed7", old):  # a checkpoint file of seed 7; a sync location with seed 7's run only
        sets = ("train.max_steps=6", f"train.resume_from={source}")
        with pytest.raises(UserError, match=r"only checkpoints of other params .*unset train.resume_from.*"
                           r"train.on_mismatch=restart"):  # fmt: skip
            train(tmp_path / "b", faces, *sets)
        assert not (tmp_path / "b" / "models" / "checkpoint.pt").exists()
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert train(tmp_path / f"r-{source.name}", faces, *sets,
                         "train.on_mismatch=restart")["resumed_from_step"] == 0  # fmt: skip
        assert "only checkpoints of other params to resume from" in caplog.text
    assert "train.seed: 7 -> 2022" in caplog.text or "another run's folder" in caplog.text


def test_a_missing_or_empty_source_is_one_line(tmp_path, faces):
    (tmp_path / "empty").mkdir()
    for source, message in ((tmp_path / "gone", "no such file or folder"), (tmp_path / "empty", "holds no checkpoint")):
        with pytest.raises(UserError, match=message) as e:
            train(tmp_path / "b", faces, "train.max_steps=4", f"train.resume_from={source}")
        assert "\n" not in str(e.value) and not (tmp_path / "b" / "models" / "checkpoint.pt").exists()


@pytest.mark.parametrize(
    "where, message",
    [
        ("models/earlier", "lies in .*models, where paths.models is written"),
        ("data/old", "lies in .*data, where paths."),
        (".", "holds paths."),
        ("..", "holds paths."),
        ("drive", "holds train.sync"),
        ("drive/run", "holds train.sync"),
    ],
)
def test_resume_from_in_or_around_what_the_workspace_writes_is_refused(tmp_path, monkeypatch, where, message):
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(Path(__file__).resolve().parents[2] / "params.yaml", tmp_path / "params.yaml")
    with pytest.raises(UserError, match=f"train.resume_from .*{message}"):
        load_params(tmp_path / "params.yaml", ["train.sync=drive", f"train.resume_from={where}"])


def test_a_remote_or_outside_source_passes_the_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(Path(__file__).resolve().parents[2] / "params.yaml", tmp_path / "params.yaml")
    for where in ("s3://bucket/runs", "hf://datasets/me/runs", str(tmp_path.parent / "elsewhere"), "earlier"):
        assert load_params(tmp_path / "params.yaml", [f"train.resume_from={where}"]).train.resume_from == where


def test_the_experiment_line_says_a_fresh_workspace_continues_from_resume_from():
    from pipeline.runs.continuation import continuation_line

    params = {"train": {"epochs": 3, "sync": "", "resume_from": "/kaggle/input/v1/checkpoints"}}
    assert continuation_line("baseline", None, params, up_to_date=False) == (
        "baseline: no checkpoint here; training continues from the newest verified one in train.resume_from "
        "(/kaggle/input/v1/checkpoints)")  # fmt: skip
    params["train"]["sync"] = "/kaggle/working/checkpoints"
    assert continuation_line("baseline", None, params, up_to_date=False).endswith("checkpoints) or train.sync")
    params["train"]["resume_from"] = ""
    assert "resumes from train.sync if it holds one" in continuation_line("baseline", None, params, False)
