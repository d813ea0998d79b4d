"""kill -9 of a training process at an arbitrary moment, then a rerun: it resumes and ends as if never killed."""

import csv
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from train_helpers import REPO, SUBPROCESS_ENV, assert_same_tensors, tiny_params, write_faces

from pipeline.core.atomic import make_temp_file
from stages import train as train_stage

# 192 steps: a wide window for the kill even when a loaded machine makes polling slow
ARGS = ["train.max_steps=0", "train.epochs=24", "train.log_every=4"]
TOTAL = 192


def cli(root: Path) -> list[str]:
    return [sys.executable, "-m", "stages.cli", "train", "--params", str(root / "params.yaml")]


def checkpoint_step(path: Path) -> int:
    try:
        return torch.load(path, weights_only=True)["step"]
    except Exception:  # absent, or replaced while being read
        return -1


def test_sigkill_mid_run_then_rerun_resumes_to_the_uninterrupted_result(tmp_path, faces, caplog):
    params = tiny_params(tmp_path / "killed", *ARGS, "train.checkpoint_every=1")
    write_faces(params, faces)
    ckpt = Path(params.paths.models) / "checkpoint.pt"
    proc = subprocess.Popen(cli(tmp_path / "killed"), cwd=REPO, env=SUBPROCESS_ENV, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while checkpoint_step(ckpt) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # a checkpoint is written every step: the kill often lands inside a write
    proc.wait(timeout=30)
    killed_at = checkpoint_step(ckpt)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert 2 <= killed_at < TOTAL
    # what a kill inside torch.save leaves: a partial temporary beside the checkpoint, named as the writer names it
    stale = make_temp_file(ckpt)
    stale.write_bytes(ckpt.read_bytes()[:100])

    with caplog.at_level(logging.INFO, logger="pipeline.train.loop"):
        train_stage.execute(params)  # the rerun, in this process (one torch thread, like the killed one)
    assert f"resuming from step {killed_at} of {TOTAL}" in caplog.text
    assert not stale.exists()
    assert sorted(p.name for p in ckpt.parent.iterdir()) == [".train.lock", "best.pt", "checkpoint.pt", "generator.pt"]
    assert (ckpt.parent / "best.pt").read_bytes() == (ckpt.parent / "generator.pt").read_bytes()  # no snapshots
    curves = sorted((Path(params.paths.plots) / "train" / "live" / "plots" / "metrics").rglob("*.tsv"))
    assert curves
    for tsv in curves:  # whatever the kill tore, each curve now runs once through every step, to the end
        steps = [int(row["step"]) for row in csv.DictReader(tsv.open(), delimiter="\t")]
        assert steps == sorted(set(steps)) and steps[-1] == TOTAL, tsv

    straight = tiny_params(tmp_path / "straight", *ARGS, "train.checkpoint_every=1000")  # only the final one
    write_faces(straight, faces)
    train_stage.execute(straight)
    for name in ("checkpoint.pt", "generator.pt"):
        a = torch.load(ckpt.with_name(name), weights_only=True)
        b = torch.load(Path(straight.paths.models) / name, weights_only=True)
        keys = ("G", "D", "G_ema", "opt_g", "opt_d", "step") if name == "checkpoint.pt" else ("config", "state_dict")
        for key in keys:
            assert_same_tensors(a[key], b[key], f"{name}:{key}")
