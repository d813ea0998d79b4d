"""pipeline.train.sync and lease on their own, against a local folder and a real S3 endpoint on 127.0.0.1.

The files published are stand-ins of a checkpoint's size (random bytes): what is checked here is the transport
(temporary name, read-back, pointer, fallback, pruning, lease); test_sync_train.py trains through it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

import pytest

from pipeline.core.errors import UserError
from pipeline.train.lease import Lease, LeaseLost, workspace_lock
from pipeline.train.sync import Publisher, SyncFolder, folder_name

SIG = {"train.model": "dcgan", "train.loss": "gan", "train.seed": 2022, "faces.sha256": "ab" * 32}


def fake_checkpoint(path: Path, step: int, size: int = 200_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(step.to_bytes(4, "little") + os.urandom(size - 4))
    return path


def publish(folder: SyncFolder, tmp_path: Path, step: int) -> bytes:
    local = fake_checkpoint(tmp_path / "local" / f"ck{step}.pt", step)
    folder.publish(local, step, {"signature": SIG, "fingerprint": {"cpu_threads": 1}})
    return local.read_bytes()


def names(folder: SyncFolder) -> list[str]:
    folder.fs.invalidate_cache()
    return sorted(p.rsplit("/", 1)[-1] for p in folder.fs.ls(folder.path, detail=False))


def test_the_folder_is_named_by_the_signature():
    assert folder_name(SIG) == folder_name(dict(reversed(SIG.items())))
    assert folder_name(SIG).startswith("dcgan-gan-") and folder_name({**SIG, "train.seed": 1}) != folder_name(SIG)


def test_publish_keeps_two_and_resume_takes_the_newest_verified(sync_url, tmp_path, caplog):
    folder = SyncFolder.open(sync_url, SIG)
    published = {step: publish(folder, tmp_path, step) for step in (2, 4, 6)}
    assert names(folder) == ["checkpoint-000000004.pt", "checkpoint-000000006.pt", "latest.json"]
    pointer = folder.pointer()
    assert (pointer["step"], pointer["previous"]["step"], pointer["signature"]) == (6, 4, SIG)
    assert pointer["size"] == len(published[6]) and pointer["host"] == socket.gethostname()

    dest = tmp_path / "B" / "models" / "checkpoint.pt"
    assert folder.resume(local_step=0, signature=SIG, dest=dest) == 6
    assert dest.read_bytes() == published[6] and os.listdir(dest.parent) == ["checkpoint.pt"]

    # steps decide, never times: a local checkpoint at a higher step stays, however old its file
    fake_checkpoint(dest, 8)
    os.utime(dest, (0, 0))
    with caplog.at_level(logging.INFO, logger="pipeline.train.sync"):
        assert folder.resume(local_step=8, signature=SIG, dest=dest) is None
    assert dest.read_bytes()[:4] == (8).to_bytes(4, "little")
    assert "as new as" in caplog.text


def test_a_pointer_to_a_truncated_or_missing_file_falls_back(sync_url, tmp_path, caplog):
    folder = SyncFolder.open(sync_url, SIG)
    published = {step: publish(folder, tmp_path, step) for step in (2, 4)}
    newest = f"{folder.path}/checkpoint-000000004.pt"
    folder.fs.pipe_file(newest, published[4][:1000])  # what a copy cut short leaves
    dest = tmp_path / "models" / "checkpoint.pt"
    with caplog.at_level(logging.WARNING, logger="pipeline.train.sync"):
        assert folder.resume(local_step=0, signature=SIG, dest=dest) == 2
    assert "checkpoint-000000004.pt (step 4), but it is 1000 bytes, not 200000" in caplog.text
    assert "falling back to step 2" in caplog.text and dest.read_bytes() == published[2]

    folder.fs.rm_file(newest)
    folder.fs.pipe_file(f"{folder.path}/checkpoint-000000002.pt", b"x" * len(published[2]))  # same size, other bytes
    caplog.clear()
    dest.unlink()
    with caplog.at_level(logging.WARNING, logger="pipeline.train.sync"):
        assert folder.resume(local_step=0, signature=SIG, dest=dest) is None
    assert "but it is missing: falling back to step 2" in caplog.text
    assert "does not match its sha256 (corrupt): falling back to the local checkpoint (step 0)" in caplog.text
    assert not dest.exists() and os.listdir(dest.parent) == []  # nothing half-downloaded stays


def test_a_pointer_of_other_params_is_skipped_undownloaded_naming_the_difference(sync_url, tmp_path, caplog):
    """Whether the training then refuses or starts over is train.on_mismatch's (tests/train/test_resume.py)."""
    folder = SyncFolder.open(sync_url, SIG)
    publish(folder, tmp_path, 2)
    other = {**SIG, "train.seed": 7}
    with caplog.at_level(logging.WARNING, logger="pipeline.train.sync"):
        assert folder.resume(local_step=0, signature=other, dest=tmp_path / "ck.pt") is None
    assert "is from other params (train.seed: 2022 -> 7), says latest.json" in caplog.text
    assert folder.other_params == [f"{folder.url}/checkpoint-000000002.pt (train.seed: 2022 -> 7)"]
    assert not [p for p in os.listdir(tmp_path) if "ck.pt" in p]  # nothing downloaded


def test_a_candidate_failing_the_callers_check_never_touches_dest(sync_url, tmp_path, caplog):
    folder = SyncFolder.open(sync_url, SIG)
    published = {step: publish(folder, tmp_path, step) for step in (2, 4)}
    dest = fake_checkpoint(tmp_path / "models" / "checkpoint.pt", 1)
    seen = []

    def check(candidate: Path, entry: dict) -> str | None:
        seen.append((entry["step"], candidate.read_bytes() == published[entry["step"]], candidate.parent))
        return "is not what the trainer wants" if entry["step"] == 4 else None

    with caplog.at_level(logging.WARNING, logger="pipeline.train.sync"):
        assert folder.resume(local_step=1, signature=SIG, dest=dest, check=check) == 2
    assert seen == [(4, True, dest.parent), (2, True, dest.parent)]  # checked verified, beside dest, before the rename
    assert "(step 4), but it is not what the trainer wants: falling back to step 2" in caplog.text
    assert dest.read_bytes() == published[2] and os.listdir(dest.parent) == ["checkpoint.pt"]

    before = fake_checkpoint(dest, 1).read_bytes()
    assert folder.resume(local_step=1, signature=SIG, dest=dest, check=lambda c, e: "refused") is None
    assert dest.read_bytes() == before and os.listdir(dest.parent) == ["checkpoint.pt"]


def test_a_killed_upload_is_never_named_and_is_cleared_by_the_next_publish(sync_url, tmp_path):
    folder = SyncFolder.open(sync_url, SIG)
    publish(folder, tmp_path, 2)
    # what an upload killed half-way leaves on a folder: a temporary with part of the bytes
    folder.fs.pipe_file(f"{folder.path}/.checkpoint-000000004.pt.deadbeef.tmp", b"partial")
    assert folder.pointer()["step"] == 2
    assert folder.resume(0, SIG, tmp_path / "ck.pt") == 2
    publish(folder, tmp_path, 6)
    assert names(folder) == ["checkpoint-000000002.pt", "checkpoint-000000006.pt", "latest.json"]


def test_publisher_uploads_beside_training_and_says_when_training_waits(sync_url, tmp_path, caplog):
    folder = SyncFolder.open(sync_url, SIG)
    lease = folder.lease(stale_s=60)
    lease.acquire()
    local = tmp_path / "models" / "checkpoint.pt"
    with caplog.at_level(logging.INFO, logger="pipeline.train.sync"):
        with Publisher(folder, tmp_path / "models" / ".sync", lease, {"signature": SIG}) as publisher:
            fake_checkpoint(local, 1, size=20_000_000)
            for step in (1, 2, 3):
                publisher.publish(local, step)  # back to back: each but the first waits for the one before
    assert folder.pointer()["step"] == 3 and publisher.published == 3
    assert "checkpoint at step 2: waiting for the upload of the previous checkpoint" in caplog.text
    assert publisher.waited_s > 0 and os.listdir(tmp_path / "models" / ".sync") == []
    assert lease.read() is None  # released


@pytest.mark.slow  # botocore retries a refused connection for about 7 s before the publish fails
def test_a_store_gone_mid_run_warns_and_the_next_publish_succeeds(s3, tmp_path, caplog):
    folder = SyncFolder.open(s3.url, SIG)
    local = tmp_path / "models" / "checkpoint.pt"
    with Publisher(folder, tmp_path / "models" / ".sync", None, {"signature": SIG}) as publisher:
        fake_checkpoint(local, 1)
        publisher.publish(local, 1)
        publisher._wait("test")
        s3.stop()
        fake_checkpoint(local, 2)
        before = local.read_bytes()
        with caplog.at_level(logging.WARNING, logger="pipeline.train.sync"):
            publisher.publish(local, 2)
            publisher._wait("test")
        assert "could not publish step 2" in caplog.text and "retrying at the next checkpoint" in caplog.text
        assert local.read_bytes() == before and publisher.published == 1
        s3.start()
        fake_checkpoint(local, 3)
        publisher.publish(local, 3)
    assert folder.pointer()["step"] == 3 and folder.pointer()["previous"]["step"] == 1


def test_lease_refuses_a_fresh_holder_and_takes_over_a_stale_one(sync_url, caplog):
    folder = SyncFolder.open(sync_url, SIG)
    first = folder.lease(stale_s=60)
    first.acquire()
    second = Lease(folder.fs, first.path, stale_s=60, settle_s=0)
    with pytest.raises(UserError, match=r"is being trained by .*heartbeat \d+ s ago.*train.sync_stale_s"):
        second.acquire()
    # another machine's lease whose heartbeat stopped 2 minutes ago
    stale = {"holder": "kaggle-1:77:abcd", "host": "kaggle-1", "pid": 77, "heartbeat": time.time() - 120}
    folder.fs.pipe_file(first.path, json.dumps(stale).encode())
    with caplog.at_level(logging.WARNING, logger="pipeline.train.lease"):
        Lease(folder.fs, first.path, stale_s=60, settle_s=0).acquire()
    assert "taking over run dcgan-gan-" in caplog.text and "from kaggle-1:77:abcd" in caplog.text
    with pytest.raises(LeaseLost, match="was taken over by"):
        first.renew()  # the first trainer learns at its next heartbeat and stops writing


def test_a_dead_process_on_this_machine_holds_no_lease(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lease = Lease(__import__("fsspec").filesystem("file"), str(tmp_path / "run" / "lease.json"), 600, settle_s=0)
    lease.fs.makedirs(str(tmp_path / "run"), exist_ok=True)
    lease._write()
    data = json.loads(Path(lease.path).read_text())
    data.update(holder="x", pid=int(proc.stdout))  # this host, this boot, a finished process
    Path(lease.path).write_text(json.dumps(data))
    Lease(lease.fs, lease.path, 600, settle_s=0).acquire()


def test_workspace_lock_refuses_a_second_trainer(tmp_path):
    with workspace_lock(tmp_path / "models"):
        with pytest.raises(UserError, match=rf"another animegan train \(pid {os.getpid()}\) is training"):
            with workspace_lock(tmp_path / "models"):
                pass
    with workspace_lock(tmp_path / "models"):  # released with the block
        pass


def test_a_location_without_its_extra_names_the_package():
    with pytest.raises(UserError, match=r"train.sync nosuch://x/y: not a location fsspec knows"):
        SyncFolder.open("nosuch://x/y", SIG)
