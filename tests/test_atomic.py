"""Atomic writes: the old content survives a failed write, and results get normal permissions."""

import errno
import json
import os
import resource
import sys

import pytest
import torch

from pipeline.core.atomic import atomic_path, atomic_write_json, replace_dir, temp_dir_beside
from pipeline.core.errors import UserError
from pipeline.train.checkpoint import save_checkpoint


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "f.json", {})
        d = temp_dir_beside(tmp_path / "out")
        (d / "x").write_text("x")
        replace_dir(d, tmp_path / "out")
    finally:
        os.umask(old)
    assert (tmp_path / "f.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755


def test_replace_dir_swaps_whole_folders(tmp_path):
    target = tmp_path / "raw"
    target.mkdir()
    (target / "old.txt").write_text("old")
    new = temp_dir_beside(target)
    (new / "new.txt").write_text("new")
    replace_dir(new, target, ours=lambda name: name.endswith(".txt"))
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_replace_dir_never_swaps_away_files_the_stage_does_not_write(tmp_path):
    target = tmp_path / "models"  # what `--set paths.detector=models` pointed the detector stage at
    target.mkdir()
    (target / "generator.pt").write_bytes(b"weights")
    (target / "detector.pt").write_bytes(b"old detector")
    new = temp_dir_beside(target)
    (new / "detector.pt").write_bytes(b"new detector")
    with pytest.raises(UserError, match=r"models holds generator.pt, which this stage does not write"):
        replace_dir(new, target)
    kept = {p.name: p.read_bytes() for p in target.iterdir()}
    assert kept == {"generator.pt": b"weights", "detector.pt": b"old detector"}
    file_target = tmp_path / "report.html"
    file_target.write_text("x")
    with pytest.raises(UserError, match="is a file"):
        replace_dir(new, file_target)
    assert file_target.read_text() == "x"


def test_a_checkpoint_write_past_the_file_size_limit_is_a_user_error_and_keeps_the_old_one(tmp_path, monkeypatch):
    # RLIMIT_FSIZE makes the kernel refuse writes past the limit with EFBIG (Python ignores SIGXFSZ): a real failed
    # write, standing in for a full disk. torch's zip writer used to turn it into a RuntimeError.
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 1, "weights": torch.zeros(10)})
    old = path.read_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # a module imported meanwhile would get a truncated .pyc
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        with pytest.raises(UserError, match=r"cannot write .*checkpoint.pt.*: file too large"):
            save_checkpoint(path, {"step": 2, "weights": torch.zeros(100_000)})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_no_space_left_is_a_user_error_naming_the_file_and_nothing_is_replaced(tmp_path, monkeypatch):
    target = tmp_path / "metrics" / "eval.json"
    atomic_write_json(target, {"old": 1})

    def full_disk(fd):  # stands in for a full disk: ext4 and NFS may report ENOSPC only when the data is flushed
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(UserError, match=r"cannot write .*eval.json: no space left on the device"):
        atomic_write_json(target, {"new": 2})
    assert json.loads(target.read_text()) == {"old": 1}
    assert [p.name for p in target.parent.iterdir()] == ["eval.json"]


def test_cleanup_skips_a_temporary_a_live_process_is_writing_and_removes_it_once_that_process_is_killed(tmp_path):
    import signal
    import subprocess
    import sys

    from pipeline.core.atomic import remove_stale_temporaries

    target = tmp_path / "models" / "checkpoint.pt"
    writer = (  # another trainer, mid-write of a large checkpoint
        "import sys, time; from pathlib import Path; from pipeline.core.atomic import atomic_path\n"
        f"with atomic_path(Path({str(target)!r})) as tmp:\n"
        "    tmp.write_bytes(b'x' * 1000); print(tmp, flush=True); time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(__file__)))  # fmt: skip
    try:
        live = tmp_path / "models" / os.path.basename(proc.stdout.readline().strip())
        assert live.is_file()
        assert remove_stale_temporaries(target) == [] and live.is_file()  # the writer is alive: untouched
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert remove_stale_temporaries(target) == [live] and not live.exists()  # its writer is gone: stale
