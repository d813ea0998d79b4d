"""Training through train.sync: kill on machine A, continue on machine B, bit for bit; one trainer per run.

"Machines" are workspaces (folders with their own models/ and data) on this host; the sync location is a local
folder (a mounted drive) or a real S3 endpoint on 127.0.0.1 (moto's server, bench/s3_server.py), through the same code.
Trainers run as `animegan train` subprocesses with one torch thread (train_helpers.SUBPROCESS_ENV), so their
fingerprints equal this process's (conftest sets one thread here too).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from train_helpers import REPO, SUBPROCESS_ENV, assert_same_tensors, tiny_params, train_tiny, write_faces

from pipeline.train.checkpoint import training_signature
from pipeline.train.resume import faces_digest
from pipeline.train.sync import SyncFolder
from stages import train as train_stage

ARGS = ["train.max_steps=0", "train.epochs=24", "train.log_every=4"]  # 192 steps, as in test_train_kill
TOTAL = 192

pytestmark = pytest.mark.slow


def cli(root: Path, *sets: str) -> list[str]:
    extra = [a for s in sets for a in ("--set", s)]
    return [sys.executable, "-m", "stages.cli", "train", "--params", str(root / "params.yaml"), *extra]


def env_for(sync_url: str, request) -> dict[str, str]:
    if sync_url.startswith("s3://"):
        return {**SUBPROCESS_ENV, **request.getfixturevalue("s3").env}
    return SUBPROCESS_ENV


def sync_folder(params, faces) -> SyncFolder:
    signature = training_signature(params.train, params.data.image_size, faces_digest(faces), len(faces))
    return SyncFolder.open(params.train.sync, signature)


def pointer_step(folder: SyncFolder) -> int:
    try:
        pointer = folder.pointer()
    except Exception:  # the store unreachable while the test stops it
        return -1
    return pointer["step"] if pointer else -1


def wait_for(condition, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"trainer ended early ({proc.returncode}): {proc.stderr.read().decode()[-3000:]}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def straight(module_tmp):
    """The uninterrupted run's checkpoint and generator (no sync, one checkpoint at the end)."""
    from train_helpers import tiny_faces

    root = module_tmp("straight")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_tiny(root, tiny_faces(), *ARGS, "train.checkpoint_every=1000")
    finally:
        torch.set_num_threads(before)
    models = root / "models"
    return {name: torch.load(models / name, weights_only=True) for name in ("checkpoint.pt", "generator.pt")}


def assert_equals_straight(models: Path, straight: dict) -> None:
    for name, keys in (("checkpoint.pt", ("G", "D", "G_ema", "opt_g", "opt_d", "step")),
                       ("generator.pt", ("config", "state_dict"))):  # fmt: skip
        state = torch.load(models / name, weights_only=True)
        for key in keys:
            assert_same_tensors(state[key], straight[name][key], f"{name}:{key}")


def test_killed_on_a_continued_on_b_ends_bit_identical(sync_url, tmp_path, faces, straight, request, caplog):
    env = env_for(sync_url, request)
    a = tiny_params(tmp_path / "A", *ARGS, "train.checkpoint_every=8", f"train.sync={sync_url}")
    write_faces(a, faces)
    folder = sync_folder(a, faces)
    proc = subprocess.Popen(cli(tmp_path / "A"), cwd=REPO, env=env, stderr=subprocess.PIPE)
    wait_for(lambda: pointer_step(folder) >= 16, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    published = folder.pointer()
    assert 16 <= published["step"] < TOTAL and published["previous"]["step"] == published["step"] - 8
    if sync_url.startswith("s3://"):  # and the newest copy then turns out cut short: B falls back to the one before
        newest = f"{folder.path}/{published['file']}"
        folder.fs.pipe_file(newest, folder.fs.cat_file(newest)[:5000])
    expected = published["step"] if sync_url.startswith(str(tmp_path)) else published["previous"]["step"]

    b = tiny_params(tmp_path / "B", *ARGS, "train.checkpoint_every=8", f"train.sync={sync_url}")
    write_faces(b, faces)  # another machine: its own data, no checkpoint
    with caplog.at_level(logging.INFO):
        train_stage.execute(b)
    assert f"resuming from step {expected} of {TOTAL}" in caplog.text
    assert "taking over run dcgan-gan-" in caplog.text  # A died on this host: its lease is stale at once
    if sync_url.startswith("s3://"):
        assert "is 5000 bytes, not" in caplog.text and f"falling back to step {expected}" in caplog.text
    assert "not be bit-identical" not in caplog.text  # equal fingerprints
    assert_equals_straight(Path(b.paths.models), straight)
    final = folder.pointer()
    assert final["step"] == TOTAL and final["sha256"] == hashlib.sha256(
        (Path(b.paths.models) / "checkpoint.pt").read_bytes()).hexdigest()  # fmt: skip
    assert folder.lease(60).read() is None  # released at the end


def test_store_stopped_during_publishes(s3, tmp_path, faces):
    """Publishing every other step, the server goes away for a while: training goes on and warns, and a later
    publish succeeds."""
    a = tiny_params(tmp_path / "A", "train.max_steps=0", "train.epochs=8", "train.log_every=4",
                    "train.checkpoint_every=2", f"train.sync={s3.url}")  # fmt: skip
    write_faces(a, faces)
    folder = sync_folder(a, faces)
    proc = subprocess.Popen(cli(tmp_path / "A"), cwd=REPO, env={**SUBPROCESS_ENV, **s3.env}, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    wait_for(lambda: pointer_step(folder) >= 2, proc)
    s3.stop()  # the publisher is busy nearly all the time: this lands inside a publish
    wait_for(lambda: any("could not publish step" in line for line in lines), proc)  # after botocore's retries
    s3.start()
    proc.wait(timeout=300)
    err = "".join(lines)
    assert proc.returncode == 0, err[-3000:]
    warning = next(line for line in lines if "could not publish step" in line)
    assert "retrying at the next checkpoint" in warning and "EndpointConnectionError" in warning
    assert any("published step" in line for line in lines[lines.index(warning) :]), err[-3000:]
    pointer = folder.pointer()
    local = Path(a.paths.models) / "checkpoint.pt"
    assert pointer["step"] == 64 and pointer["sha256"] == hashlib.sha256(local.read_bytes()).hexdigest()


def test_a_killed_upload_never_becomes_latest(s3, tmp_path, faces):
    a = tiny_params(tmp_path / "A", *ARGS, "train.checkpoint_every=1", f"train.sync={s3.url}")
    write_faces(a, faces)
    folder = sync_folder(a, faces)
    for kill_after in (2, 5):  # publishing every step: the kill lands inside an upload, a read-back or a rename
        proc = subprocess.Popen(cli(tmp_path / "A", "train.sync_stale_s=0"), cwd=REPO,
                                env={**SUBPROCESS_ENV, **s3.env}, stderr=subprocess.PIPE)  # fmt: skip
        wait_for(lambda k=kill_after: pointer_step(folder) >= k, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        pointer = folder.pointer()
        for entry in (pointer, pointer["previous"]):  # whatever the kill tore, what the pointer names is whole
            data = folder.fs.cat_file(f"{folder.path}/{entry['file']}")
            assert len(data) == entry["size"]
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]


def test_a_second_trainer_of_the_run_is_refused_while_the_first_runs(sync_url, tmp_path, faces, request):
    env = env_for(sync_url, request)
    long = ["train.max_steps=0", "train.epochs=1000", "train.checkpoint_every=8"]  # still running when B starts
    a = tiny_params(tmp_path / "A", *long, f"train.sync={sync_url}")
    write_faces(a, faces)
    folder = sync_folder(a, faces)
    proc = subprocess.Popen(cli(tmp_path / "A"), cwd=REPO, env=env, stderr=subprocess.PIPE)
    wait_for(lambda: pointer_step(folder) >= 8, proc)
    b = tiny_params(tmp_path / "B", *long, f"train.sync={sync_url}")
    write_faces(b, faces)
    second = subprocess.run(cli(tmp_path / "B"), cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    lines = second.stderr.strip().splitlines()
    assert second.returncode == 2 and "is being trained by" in lines[-1] and "train.sync_stale_s" in lines[-1]
    assert not (Path(b.paths.models) / "checkpoint.pt").exists()
    assert proc.poll() is None  # A still trains
    proc.kill()
    proc.wait(timeout=30)


def test_two_trainers_in_one_workspace_the_second_refused_the_first_unharmed(tmp_path, faces, straight):
    a = tiny_params(tmp_path / "A", *ARGS, "train.checkpoint_every=1000")
    write_faces(a, faces)
    proc = subprocess.Popen(cli(tmp_path / "A"), cwd=REPO, env=SUBPROCESS_ENV, stderr=subprocess.PIPE)
    lock = Path(a.paths.models) / ".train.lock"
    wait_for(lambda: lock.is_file() and lock.read_text().strip() == str(proc.pid), proc)
    second = subprocess.run(cli(tmp_path / "A"), cwd=REPO, env=SUBPROCESS_ENV, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert second.returncode == 2, second.stderr[-2000:]
    assert second.stderr.strip().splitlines() == [
        f"error: another animegan train (pid {proc.pid}) is training in this workspace ({lock} is locked): "
        "wait for it to finish or stop it"
    ]
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert_equals_straight(Path(a.paths.models), straight)
    for tsv in (Path(a.paths.plots) / "train" / "live" / "plots" / "metrics").rglob("*.tsv"):
        steps = [int(row["step"]) for row in csv.DictReader(tsv.open(), delimiter="\t")]
        assert steps == sorted(set(steps)), tsv  # each step once, in order: only one trainer wrote


def test_another_setup_continues_with_a_warning_naming_what_differs(tmp_path, faces, caplog):
    train_tiny(tmp_path, faces, "train.max_steps=4", "train.checkpoint_every=2")
    torch.set_num_threads(2)  # conftest restores it
    with caplog.at_level(logging.WARNING, logger="pipeline.train.loop"):
        train_tiny(tmp_path, faces, "train.max_steps=6", "train.checkpoint_every=2")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "the checkpoint was written on another setup (cpu_threads: 1 -> 2): training continues, but will not be "
        "bit-identical to an uninterrupted run"
    ]


def test_a_stale_lease_of_another_machine_is_taken_over(tmp_path, faces, caplog):
    url = str(tmp_path / "drive")
    params = tiny_params(tmp_path / "B", "train.max_steps=2", f"train.sync={url}", "train.sync_stale_s=60")
    folder = sync_folder(params, faces)
    folder.fs.makedirs(folder.path, exist_ok=True)
    lease = {"holder": "colab-7:42:beef", "host": "colab-7", "pid": 42, "heartbeat": time.time() - 61}
    Path(folder.path, "lease.json").write_text(json.dumps(lease))
    with caplog.at_level(logging.WARNING, logger="pipeline.train.lease"):
        train_tiny(tmp_path / "B", faces, "train.max_steps=2", f"train.sync={url}", "train.sync_stale_s=60")
    assert "from colab-7:42:beef, whose last heartbeat was 61 s ago" in caplog.text
    assert folder.pointer()["step"] == 2


def test_a_finished_run_whose_last_publish_failed_publishes_it_when_rerun(tmp_path, faces):
    url = str(tmp_path / "drive")
    train_tiny(tmp_path / "A", faces, "train.max_steps=4", f"train.sync={url}")
    params = tiny_params(tmp_path / "A", "train.max_steps=4", f"train.sync={url}")
    folder = sync_folder(params, faces)
    folder.fs.rm(folder.path, recursive=True)  # as if the network was gone for the last publish and its retry
    train_tiny(tmp_path / "A", faces, "train.max_steps=4", f"train.sync={url}")  # "already finished"
    local = Path(params.paths.models) / "checkpoint.pt"
    pointer = folder.pointer()
    assert pointer["step"] == 4 and pointer["sha256"] == hashlib.sha256(local.read_bytes()).hexdigest()
