"""A Kaggle session continues an earlier session's run from its saved output, read-only, bit for bit (issue 26).

A Kaggle layout in a temp root, through the stages (`animegan download`, `clean`, `train` subprocesses):
- input/faces-dataset/faces/*.jpg: the faces as Kaggle unpacks an uploaded zip, named by data.url (a folder);
- working/animegan: session 1's workspace (the notebook's), with train.sync=working/checkpoints (what the notebook
  sets on Kaggle); killed by SIGKILL mid-training, as the platform ends a session;
- input/earlier-version: "save version" keeps /kaggle/working as the version's output, which a later session reads
  under /kaggle/input/... once added as input: here working/ copied there, then chmod -R a-w;
- session 2: a fresh working/ (a new session's disk is empty) whose train.resume_from names the earlier output.
Where the kernel lets this user make one, session 2's trainer runs inside a private user and mount namespace
(`unshare -rm`) with the earlier output bind-mounted read-only over itself: a write there fails with EROFS. As
the tests may run as root, where chmod stops nothing, every test also compares the earlier output's entries,
bytes, mtimes and modes before and after. The uninterrupted run is trained in this process on the same faces.
"""

from __future__ import annotations

import io
import json
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from folder_state import set_writable, tree_state
from train_helpers import REPO, SUBPROCESS_ENV, TINY, assert_same_tensors, load_state, train_tiny

from pipeline.core.config import apply_override
from pipeline.data.cartoon import cartoon_face

pytestmark = pytest.mark.slow
ARGS = ["train.max_steps=0", "train.epochs=24", "train.log_every=4", "train.checkpoint_every=8"]  # 192 steps
TOTAL = 192


def ro_bind_works(probe: Path) -> bool:
    """Whether `unshare -rm` can bind-mount a folder read-only over itself here (no privileges asked for)."""
    probe.mkdir(parents=True, exist_ok=True)
    script = 'mount --bind -o ro "$0" "$0" && ! touch "$0/probe" 2>/dev/null'
    try:
        done = subprocess.run(["unshare", "-rm", "sh", "-c", script, str(probe)], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and not (probe / "probe").exists()


def workspace(folder: Path, *overrides: str) -> Path:
    """A workspace as the notebook makes one: the project's params.yaml, relative paths, TINY and overrides."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for item in [*TINY, *overrides]:
        apply_override(raw, item)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return folder


def animegan(folder: Path, stage: str, *sets: str, read_only: Path | None = None) -> list[str]:
    """The command that runs a stage in folder; with read_only, inside a namespace where it is mounted read-only."""
    cmd = [sys.executable, "-m", "stages.cli", stage, "--params", "params.yaml"]
    cmd += [arg for s in sets for arg in ("--set", s)]
    if read_only is None:
        return cmd
    return ["unshare", "-rm", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(read_only), *cmd]


def run(cmd: list[str], folder: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=folder, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=timeout)


def prepared(folder: Path, faces_folder: Path) -> Path:
    """A fresh session's workspace with the faces downloaded (copied from the input folder) and cleaned; its
    train.sync is ../checkpoints, beside the workspace in the session's working/ (as the notebook sets on Kaggle)."""
    workspace(folder, *ARGS, f"data.url={faces_folder}", "train.sync=../checkpoints")
    for stage in ("download", "clean"):
        done = run(animegan(folder, stage), folder)
        assert done.returncode == 0, done.stderr[-3000:]
    return folder


def kill_after_a_publish(folder: Path, sync: Path, at_least: int) -> None:
    """Session 1: train until train.sync's latest.json names step at_least or later, then SIGKILL."""
    proc = subprocess.Popen(animegan(folder, "train"), cwd=folder, env=SUBPROCESS_ENV, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while True:
        pointers = list(sync.glob("*/latest.json"))
        try:
            if pointers and json.loads(pointers[0].read_text())["step"] >= at_least:
                break
        except ValueError:
            pass  # being replaced
        if proc.poll() is not None:
            raise AssertionError(f"session 1 ended early ({proc.returncode}): {proc.stderr.read().decode()[-3000:]}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def kaggle(module_tmp):
    """The layout above, session 1 killed after its step-16 publish and saved as input/earlier-version (read-only);
    a prepared fresh session (faces downloaded and cleaned) to copy; the uninterrupted run's generator. At the end
    the earlier output must be as it was."""
    root = module_tmp("kaggle")
    faces_folder = root / "input" / "faces-dataset" / "faces"
    faces_folder.mkdir(parents=True)
    for i in range(64):
        buf = io.BytesIO()
        cartoon_face(seed=3, index=i, size=48).save(buf, format="JPEG", quality=90)
        (faces_folder / f"{i}.jpg").write_bytes(buf.getvalue())
    set_writable(root / "input" / "faces-dataset", False)
    session1 = prepared(root / "working" / "animegan", faces_folder)
    kill_after_a_publish(session1, root / "working" / "checkpoints", 16)
    earlier = root / "input" / "earlier-version"
    shutil.copytree(root / "working", earlier, symlinks=True)
    shutil.rmtree(root / "working")
    fresh = prepared(root / "template" / "working" / "animegan", faces_folder)
    faces = np.load(fresh / "data" / "clean" / "faces.npy")
    before_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses (conftest's one thread is per test, this fixture is per module)
    try:
        straight = train_tiny(root / "straight", faces, *ARGS, "train.checkpoint_every=1000")
    finally:
        torch.set_num_threads(before_threads)
    set_writable(earlier, False)
    before = tree_state(earlier)
    yield {"root": root, "earlier": earlier, "fresh": fresh, "straight": straight,
           "straight_generator": load_state(root / "straight" / "models" / "generator.pt"),
           "ro_bind": ro_bind_works(root / "probe")}  # fmt: skip
    after = tree_state(earlier)
    set_writable(root / "input", True)
    assert after == before, "the earlier output changed"


def new_session(kaggle: dict, tmp_path: Path) -> Path:
    """A new session's workspace: the prepared fresh one copied (its own working/, its own checkpoints/)."""
    shutil.copytree(kaggle["fresh"].parent, tmp_path / "working", symlinks=True)
    return tmp_path / "working" / "animegan"


@pytest.mark.parametrize("layout", ["checkpoints", "animegan"])
def test_a_new_session_continues_the_earlier_output_bit_identical_and_never_writes_there(kaggle, tmp_path, layout):
    """resume_from: the earlier output's train.sync folder (checkpoints/: verified by latest.json's sha256), or its
    workspace (animegan/: its models/checkpoint.pt)."""
    earlier = kaggle["earlier"]
    before = tree_state(earlier)
    if layout == "checkpoints":
        (pointer,) = (earlier / "checkpoints").glob("*/latest.json")
        expected = json.loads(pointer.read_text())["step"]
    else:
        expected = load_state(earlier / "animegan" / "models" / "checkpoint.pt")["step"]
    assert 16 <= expected < TOTAL
    folder = new_session(kaggle, tmp_path)
    cmd = animegan(folder, "train", f"train.resume_from={earlier / layout}",
                   read_only=earlier if kaggle["ro_bind"] else None)  # fmt: skip
    done = run(cmd, folder)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resuming from step {expected} of {TOTAL}" in done.stderr
    assert "not be bit-identical" not in done.stderr and "WARNING" not in done.stderr
    summary = json.loads((folder / "metrics" / "train.json").read_text())
    assert summary["generator_sha256"] == kaggle["straight"]["generator_sha256"]
    assert summary["resumed_from_step"] == expected
    generator = load_state(folder / "models" / "generator.pt")
    assert_same_tensors(generator["state_dict"], kaggle["straight_generator"]["state_dict"], "generator")
    (published,) = (tmp_path / "working" / "checkpoints").glob("*/latest.json")  # this session's own publish target
    assert json.loads(published.read_text())["step"] == TOTAL
    assert tree_state(earlier) == before


def test_a_truncated_checkpoint_in_the_read_only_output_is_one_warning_then_one_line_exit_2(kaggle, tmp_path):
    """The earlier output's only checkpoint cut short (its sync folder gone): no candidate is left, and a run asked
    to continue does not start over, whatever train.on_mismatch says (the presets say restart)."""
    cut = tmp_path / "input" / "cut-version"
    shutil.copytree(kaggle["earlier"] / "animegan" / "models", cut / "animegan" / "models")
    checkpoint = cut / "animegan" / "models" / "checkpoint.pt"
    set_writable(cut, True)
    checkpoint.write_bytes(checkpoint.read_bytes()[:20000])
    set_writable(cut, False)
    before = tree_state(cut)
    folder = new_session(kaggle, tmp_path)
    for on_mismatch in ("refuse", "restart"):
        sets = (f"train.resume_from={cut / 'animegan'}", f"train.on_mismatch={on_mismatch}")
        done = run(animegan(folder, "train", *sets, read_only=cut if kaggle["ro_bind"] else None), folder)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, done.stderr[-3000:]
        warnings = [line for line in lines if line.startswith("WARNING")]
        assert len(warnings) == 1 and f"{checkpoint} (train.resume_from) is not a checkpoint" in warnings[0]
        assert lines[-1] == (f"error: train.resume_from {cut / 'animegan'}: no checkpoint there that this training can "
                             'continue (the warning above says why): name another earlier run, or set '
                             'train.resume_from "" to start over')  # fmt: skip
        # no checkpoint, no temporary, no pointer, checkpoint or lease in train.sync: train.sync's lease was taken
        # (its folder made) and given back before train.resume_from was read, so folders may be left, files not
        assert [k for k, v in written(folder).items() if v[0] not in (stat.S_IFDIR, "dir")] == []
    assert tree_state(cut) == before
    set_writable(cut, True)


def written(folder: Path) -> dict[str, tuple]:
    """What the session wrote around its workspace: its models/ (but the workspace lock, which every `animegan
    train` takes first) and its train.sync folder."""
    found = {}
    for where in (folder / "models", folder.parent / "checkpoints"):
        if where.exists():
            found |= {f"{where.name}/{k}": v for k, v in tree_state(where).items() if k != ".train.lock"}
    return found


def test_a_missing_source_or_one_in_the_outputs_is_one_line_exit_2_and_nothing_written(kaggle, tmp_path):
    """Found before anything is written: no checkpoint, no lease or folder in the session's train.sync."""
    folder = new_session(kaggle, tmp_path)
    assert written(folder) == {}
    gone = tmp_path / "input" / "no-such-version"
    done = run(animegan(folder, "train", f"train.resume_from={gone}"), folder)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"error: train.resume_from {gone}: no such file or folder (an earlier Kaggle version's output, once added "
        "as input, is under /kaggle/input/)"
    ]
    assert not gone.exists() and not (folder / "models" / "checkpoint.pt").exists()
    for inside, area in (("models/earlier", "models"), ("data/earlier", "data")):
        (folder / inside).mkdir(parents=True)
        done = run(animegan(folder, "train", f"train.resume_from={inside}"), folder)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr[-3000:]
        assert done.stderr.startswith(f"error: params.yaml: train.resume_from ({folder / inside}) lies in "
                                      f"{folder / area}, where paths.")  # fmt: skip
        assert list((folder / inside).iterdir()) == []
    done = run(animegan(folder, "train", f"train.resume_from={tmp_path / 'working'}"), folder)  # holds the workspace
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "holds paths." in done.stderr and "which this workspace writes" in done.stderr
    (folder / "models" / "earlier").rmdir()
    assert set(written(folder)) <= {"models/."}
