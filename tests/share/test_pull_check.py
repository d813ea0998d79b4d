"""`animegan pull` on a small real DVC repository: refused in one line when the remote lacks a file, else pulled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core.errors import UserError
from pipeline.runs.remote import check_pullable, missing_outputs

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # real dvc and git commands: seconds each
GIT_ID = ["-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false"]
ENV = os.environ | {
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    "PYTHONPATH": str(REPO),
    "DVC_NO_ANALYTICS": "1",
}


def sh(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120)
    assert not check or done.returncode == 0, f"{args}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


@pytest.fixture
def pushed(tmp_path) -> tuple[Path, Path]:
    """A repo with models/g.bin and samples/ under DVC, pushed to a folder remote; and a fresh clone of it."""
    a, store = tmp_path / "a", tmp_path / "store"
    a.mkdir()
    sh(a, "git", "init", "-q")
    sh(a, "dvc", "init", "-q")
    (a / "models").mkdir()
    (a / "models" / "g.bin").write_bytes(b"generator weights")
    (a / "samples").mkdir()
    for i in range(3):
        (a / "samples" / f"{i}.jpg").write_bytes(f"image {i}".encode())
    sh(a, "dvc", "add", "-q", "models/g.bin", "samples")
    sh(a, "dvc", "remote", "add", "-d", "store", str(store))
    sh(a, "git", "add", "-A")
    sh(a, "git", *GIT_ID, "commit", "-q", "-m", "outputs")
    sh(a, "dvc", "push", "-q")
    b = tmp_path / "b"
    sh(tmp_path, "git", "clone", "-q", str(a), str(b))
    return b, store


def workspace(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if not {".git", ".dvc"} & set(p.relative_to(root).parts))


def remove_object(store: Path, content: bytes) -> None:
    import hashlib

    md5 = hashlib.md5(content).hexdigest()
    (store / "files" / "md5" / md5[:2] / md5[2:]).unlink()


def test_a_complete_remote_passes_and_animegan_pull_brings_the_files(pushed):
    b, _ = pushed
    assert missing_outputs(b) == []
    sh(b, sys.executable, "-m", "stages.cli", "pull")
    assert (b / "models" / "g.bin").read_bytes() == b"generator weights"
    assert (b / "samples" / "2.jpg").read_bytes() == b"image 2"


def test_a_missing_object_is_named_in_one_line_and_nothing_changes(pushed):
    b, store = pushed
    remove_object(store, b"generator weights")
    remove_object(store, b"image 1")
    before = workspace(b)
    # a whole file gone: found by DVC's cloud status before anything is fetched
    with pytest.raises(UserError, match=r"default DVC remote lacks 1 file\(s\).*: models/g.bin \("):
        check_pullable(b)
    done = sh(b, sys.executable, "-m", "stages.cli", "pull", check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "models/g.bin" in done.stderr, done.stderr
    # a file inside a folder whose listing the remote still has: only the transfer finds it, the checkout never runs
    done = sh(b, sys.executable, "-m", "stages.cli", "pull", "samples.dvc", check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "could not provide all of: samples;" in done.stderr, done.stderr
    assert workspace(b) == before


def test_targets_limit_the_check_and_a_bad_remote_or_folder_is_one_line(pushed, tmp_path):
    b, store = pushed
    remove_object(store, b"generator weights")
    check_pullable(b, targets=["samples.dvc"])  # the folder's listing is there
    with pytest.raises(UserError, match="models/g.bin"):
        check_pullable(b, targets=["models/g.bin.dvc"])
    with pytest.raises(UserError, match="remote 'nope' doesn't exist"):
        check_pullable(b, remote="nope")
    sh(b, "dvc", "remote", "remove", "store")
    with pytest.raises(UserError, match="no DVC remote"):
        check_pullable(b)
    elsewhere = tmp_path / "plain"
    elsewhere.mkdir()
    with pytest.raises(UserError, match="not inside a DVC repository"):
        check_pullable(elsewhere)
