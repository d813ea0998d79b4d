"""Resume never costs the local checkpoint: a synced candidate replaces it only after every check (size, sha256,
params, step, fingerprint); a failing one is skipped with a warning for the next; train.on_mismatch decides only
when no checkpoint of these params exists anywhere. Real trainings, real files, a sync folder on disk."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import pytest
from train_helpers import assert_same_tensors, checkpoint_of, start_of, train_tiny

from pipeline.core.errors import UserError

pytestmark = pytest.mark.slow
EPOCHS = "train.epochs=10"  # 80 steps of 64 faces in batches of 8: train.max_steps decides


def train(root: Path, faces, *overrides: str) -> dict:
    return train_tiny(root, faces, EPOCHS, *overrides)


def sync_folder_of(sync: Path) -> Path:
    (folder,) = [p for p in sync.iterdir() if p.is_dir()]
    return folder


def point_latest_at(folder: Path, checkpoint: Path, step: int) -> None:
    """What a user copying files between folders by hand does: put another checkpoint in the folder and edit
    latest.json to its step, sha256 and size (the pointer's recorded signature and fingerprint stay)."""
    name = f"checkpoint-{step:09d}.pt"
    shutil.copyfile(checkpoint, folder / name)
    data = (folder / name).read_bytes()
    pointer = json.loads((folder / "latest.json").read_text())
    previous = {k: v for k, v in pointer.items() if k not in ("previous", "signature")}
    pointer |= {"step": step, "file": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                "previous": previous}  # fmt: skip
    (folder / "latest.json").write_text(json.dumps(pointer))


@pytest.fixture
def foreign_named_by_pointer(tmp_path, faces):
    """This workspace trained 24 steps, published to the sync folder; latest.json then edited to name a seed-7
    checkpoint of step 26 (its sha256 and size, so both verify)."""
    sync = tmp_path / "drive"
    train(tmp_path / "ws", faces, "train.max_steps=24", f"train.sync={sync}")
    train(tmp_path / "seed7", faces, "train.max_steps=26", "train.seed=7")
    point_latest_at(sync_folder_of(sync), tmp_path / "seed7" / "models" / "checkpoint.pt", 26)
    return sync


@pytest.mark.parametrize("on_mismatch", ["refuse", "restart"])
def test_a_foreign_checkpoint_named_by_an_edited_pointer_never_replaces_the_local_one(
    tmp_path, faces, foreign_named_by_pointer, on_mismatch, caplog
):
    sync, local = foreign_named_by_pointer, tmp_path / "ws" / "models" / "checkpoint.pt"
    before = local.read_bytes()
    sets = ("train.max_steps=26", f"train.sync={sync}", f"train.on_mismatch={on_mismatch}")
    with caplog.at_level(logging.WARNING):
        step, after = start_of(tmp_path / "ws", faces, EPOCHS, *sets)
    assert step == 24 and after == before  # resumes from the local checkpoint, byte-identical
    assert "checkpoint-000000026.pt (step 26), but it is from other params (train.seed: 7 -> 2022)" in caplog.text
    assert "starting over" not in caplog.text
    assert sorted(p.name for p in local.parent.iterdir()) == [".sync", "checkpoint.pt", "generator.pt"]

    assert train(tmp_path / "ws", faces, *sets)["resumed_from_step"] == 24
    train(tmp_path / "straight", faces, "train.max_steps=26")
    assert_same_tensors(checkpoint_of(tmp_path / "ws")["G"], checkpoint_of(tmp_path / "straight")["G"])


def test_a_pointer_whose_fingerprint_or_step_differs_from_its_file_is_skipped(tmp_path, faces, caplog):
    sync = tmp_path / "drive"
    train(tmp_path / "a", faces, "train.max_steps=6", f"train.sync={sync}")
    folder = sync_folder_of(sync)
    pointer = json.loads((folder / "latest.json").read_text())
    assert (pointer["step"], pointer["previous"]["step"]) == (6, 4)
    pointer["fingerprint"] = {**pointer["fingerprint"], "device_name": "another CPU"}
    (folder / "latest.json").write_text(json.dumps(pointer))
    with caplog.at_level(logging.WARNING):
        assert start_of(tmp_path / "b", faces, EPOCHS, "train.max_steps=6", f"train.sync={sync}")[0] == 4
    assert "(step 6), but it was written on another setup than latest.json records" in caplog.text

    pointer["previous"]["step"] = 5  # the file holds step 4
    (folder / "latest.json").write_text(json.dumps(pointer))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert start_of(tmp_path / "c", faces, EPOCHS, "train.max_steps=6", f"train.sync={sync}") == (None, b"")
    assert "holds step 4, not the 5 latest.json records" in caplog.text


def test_only_checkpoints_of_other_params_refuse_or_restart(tmp_path, faces, caplog):
    """No local checkpoint, and the sync folder of these params holds another seed's (a folder copied by hand)."""
    sync = tmp_path / "drive"
    train(tmp_path / "seed7", faces, "train.max_steps=4", "train.seed=7", f"train.sync={sync}")
    seven = sync_folder_of(sync)
    train(tmp_path / "ours", faces, "train.max_steps=2", f"train.sync={sync}")
    ours = next(p for p in sync.iterdir() if p != seven)
    shutil.rmtree(ours)
    shutil.copytree(seven, ours)
    sets = ("train.max_steps=4", f"train.sync={sync}")
    with pytest.raises(UserError, match=r"only checkpoints of other params .*\(train.seed: 7 -> 2022\).*"
                       r"train.on_mismatch=restart") as e:  # fmt: skip
        train(tmp_path / "b", faces, *sets)
    assert "\n" not in str(e.value) and not (tmp_path / "b" / "models" / "checkpoint.pt").exists()
    with caplog.at_level(logging.WARNING):
        assert train(tmp_path / "b", faces, *sets, "train.on_mismatch=restart")["resumed_from_step"] == 0
    assert "only checkpoints of other params to resume from" in caplog.text and "starting over" in caplog.text


def test_a_local_checkpoint_of_other_params_is_refused_or_replaced_by_a_synced_one_of_these(tmp_path, faces):
    sync = tmp_path / "drive"
    train(tmp_path / "a", faces, "train.max_steps=4", f"train.sync={sync}")  # these params, published
    train(tmp_path / "b", faces, "train.max_steps=2", "train.seed=7")  # b's own: another seed
    foreign = (tmp_path / "b" / "models" / "checkpoint.pt").read_bytes()
    with pytest.raises(UserError, match=r"checkpoint.pt is from other params \(train.seed: 7 -> 2022\)"):
        train(tmp_path / "b", faces, "train.max_steps=4", f"train.sync={sync}")
    assert (tmp_path / "b" / "models" / "checkpoint.pt").read_bytes() == foreign  # refuse: never replaced
    restart = ("train.max_steps=4", f"train.sync={sync}", "train.on_mismatch=restart")
    step, _ = start_of(tmp_path / "b", faces, EPOCHS, *restart)
    assert step == 4  # restart: a checkpoint of these params exists, so it is resumed, not step 0
