"""The Colab-to-Kaggle story with real git and DVC: `dvc repro` on A is killed mid-training; a fresh clone B with the
same train.sync (a folder standing in for a mounted drive) runs its own data stages, continues training from A's
last published checkpoint, and goes on to sample and evaluate; its generator equals an uninterrupted run's.

A is the demo's workspace (stages.demo: a git + DVC repository running the real pipeline on generated faces),
trained 2 epochs (92 steps). Every process runs torch on one thread, so all three share one fingerprint.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from demo_workspace import SAMPLE_COUNT, SMALL_EVAL, sets
from train_helpers import REPO, assert_same_tensors

from stages.demo import demo_env

pytestmark = pytest.mark.slow
EPOCHS, CHECKPOINT_EVERY = 2, 20
TOTAL = EPOCHS * 46  # the demo's 46 steps per epoch


def env_of(ws: Path) -> dict[str, str]:
    return demo_env(ws) | {"OMP_NUM_THREADS": "1", "ANIMEGAN_PROGRESS": "0", "CUDA_VISIBLE_DEVICES": ""}


def pointer_step(drive: Path) -> int:
    for pointer in drive.glob("*/latest.json"):
        try:
            return json.loads(pointer.read_text())["step"]
        except (OSError, ValueError):
            return -1
    return -1


def test_killed_repro_on_a_continues_in_a_fresh_clone_whose_repro_samples_and_evaluates(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("needs git")
    a, b, straight, drive = tmp_path / "A", tmp_path / "B", tmp_path / "straight", tmp_path / "drive"
    settings = sets(
        f"train.epochs={EPOCHS}", f"train.checkpoint_every={CHECKPOINT_EVERY}", f"train.sync={drive}", *SMALL_EVAL
    )
    demo = [sys.executable, "-m", "stages.demo", "--workspace", str(a), *settings]
    proc = subprocess.Popen(demo, cwd=REPO, env=env_of(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 900
    while pointer_step(drive) < CHECKPOINT_EVERY:  # the first publish
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the Colab session ends: dvc and the trainer with it
    proc.wait(timeout=30)
    published = pointer_step(drive)
    assert CHECKPOINT_EVERY <= published < TOTAL

    subprocess.run(["git", "clone", "-q", str(a), str(b)], check=True)  # the next machine: code and params only
    assert not (b / "models").exists() and not (b / "data").exists()
    done = subprocess.run(["dvc", "repro"], cwd=b, env=env_of(b), capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"resuming from step {published} of {TOTAL}" in done.stderr
    assert "taking over run" in done.stderr  # A's trainer died on this host: its lease is stale at once
    evaluated = json.loads((b / "metrics" / "eval.json").read_text())
    assert evaluated and len(list((b / "samples").glob("*.jpg"))) == SAMPLE_COUNT
    lock = yaml.safe_load((b / "dvc.lock").read_text())
    assert {"train", "sample", "evaluate"} <= set(lock["stages"])
    assert json.loads((b / "metrics" / "train.json").read_text())["resumed_from_step"] == published

    # the same params trained without interruption, from B's clean faces
    (straight / "data").mkdir(parents=True)
    shutil.copytree(b / "data" / "clean", straight / "data" / "clean")
    shutil.copy(b / "params.yaml", straight / "params.yaml")
    cmd = [sys.executable, "-m", "stages.cli", "train", "--set", "train.sync="]
    done = subprocess.run(cmd, cwd=straight, env=env_of(REPO), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    ours = torch.load(b / "models" / "generator.pt", weights_only=True)
    theirs = torch.load(straight / "models" / "generator.pt", weights_only=True)
    assert_same_tensors(ours["state_dict"], theirs["state_dict"], "generator.pt")
