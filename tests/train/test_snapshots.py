"""Snapshots scored while training, on real tiny runs: the history, curves and grids; the best kept in best.pt equals
the generator trained to the best step; sample draws it; kill -9 and resume ends bit-identical, history included;
train.patience stops where the rule says; bad settings end in one line through the CLI.

The scorer is the real one (pipeline.metrics.snapshot_scorer): the untrained, calibrated Inception against a FID
reference of the same tiny faces (computed once for the module), and MTCNN for AFD (no detector stage needed).
select_by is kid: an untrained Inception's KID moves from snapshot to snapshot, AFD of a tiny untrained generator
stays 0.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import REPO, SUBPROCESS_ENV, assert_same_tensors, load_state, tiny_faces, tiny_params, write_faces
from typer.testing import CliRunner

from pipeline.core.atomic import make_temp_file
from pipeline.core.distributed import init_distributed
from pipeline.core.errors import UserError
from pipeline.core.hashing import sha256_file
from pipeline.metrics.snapshot_scorer import load_snapshot_scorer
from pipeline.train.best_file import best_record
from pipeline.train.generator_file import load_generator
from pipeline.train.loop import TrainPaths, train_gan
from pipeline.train.rejection import SamplingKnobs, draw_images
from pipeline.train.sampling import jpeg_roundtrip, read_jpegs
from stages import evaluate, fid_reference, sample
from stages import train as train_stage
from stages.cli import app

SNAPSHOTS = [
    "train.snapshot_kimg=0.016",  # every 2 steps of 8 images
    "train.snapshot_count=8",
    "train.snapshot_metrics=[kid, afd]",
    "train.select_by=kid",
    "train.max_steps=8",
    "eval.fid.weights=untrained",
    "eval.fid.batch_size=8",
    "eval.fid.reference_count=12",
    "eval.kid.subsets=2",
    "eval.kid.subset_size=4",
    "eval.kid.reference_pool=12",
    "eval.prdc.reference_count=12",
    "eval.afd.detector=mtcnn",
    "eval.afd.real_count=4",
    "eval.repeats=2",
    "sample.count=8",
    "sample.batch_size=5",
]
STEPS = [2, 4, 6, 8]
STATE_KEYS = ("G", "D", "G_ema", "opt_g", "opt_d", "step", "snapshots")


@pytest.fixture(scope="module")
def shared(module_tmp) -> Path:
    """The FID reference of the tiny faces and the untrained Inception's cache, made once."""
    root = module_tmp("snapshot-reference")
    torch.set_num_threads(1)  # module fixtures run before conftest's one-thread fixture: the tests compare to them
    params = tiny_params(root, *SNAPSHOTS, f"eval.fid.cache_dir={root / 'cache'}")
    write_faces(params, _faces())
    fid_reference.execute(params)
    return root


def _faces() -> np.ndarray:
    return tiny_faces()


def snapshot_params(root: Path, shared: Path, *overrides: str):
    params = tiny_params(root, *SNAPSHOTS, f"paths.fid_reference={shared / 'data' / 'fid_reference'}",
                         f"eval.fid.cache_dir={shared / 'cache'}", *overrides)  # fmt: skip
    write_faces(params, _faces())
    return params


@pytest.fixture(scope="module")
def straight(module_tmp, shared) -> Path:
    """8 steps, a snapshot every 2, never interrupted."""
    root = module_tmp("snapshot-straight")
    torch.set_num_threads(1)
    train_stage.execute(snapshot_params(root, shared))
    return root


def history_of(root: Path) -> list[dict]:
    return json.loads((root / "metrics" / "train.json").read_text())["snapshots"]["history"]


def running_best(kids: list[float]) -> list[int]:
    """The step of the best (lowest, strictly) kid so far at each snapshot, computed here from the values."""
    best, steps = None, []
    for step, value in zip(STEPS, kids, strict=True):
        if best is None or value < best[1]:
            best = (step, value)
        steps.append(best[0])
    return steps


def curve(root: Path, name: str) -> list[tuple[int, float]]:
    tsv = root / "plots" / "train" / "live" / "plots" / "metrics" / "snapshot" / f"{name}.tsv"
    return [(int(r["step"]), float(r[name])) for r in csv.DictReader(tsv.open(), delimiter="\t")]


def test_a_run_with_snapshots_writes_the_history_curves_grids_and_the_best(straight: Path) -> None:
    summary = json.loads((straight / "metrics" / "train.json").read_text())["snapshots"]
    history = summary["history"]
    assert [e["step"] for e in history] == STEPS and [e["kimg"] for e in history] == [0.016, 0.032, 0.048, 0.064]
    kids = [e["kid"] for e in history]
    assert all(np.isfinite(kids)) and len(set(kids)) == 4  # the generator changes between snapshots
    assert all(0 <= e["afd"] <= 1 for e in history)
    best_steps = running_best(kids)
    assert [e["best_step"] for e in history] == best_steps
    assert [e["best_kid"] for e in history] == [kids[STEPS.index(s)] for s in best_steps]
    assert summary["best"]["step"] == best_steps[-1] and summary["best"]["kid"] == min(kids)
    assert summary["select_by"] == "kid" and summary["better"] == "lower" and summary["stopped_early"] is False
    assert summary["scorer"]["fid_backbone"] == "untrained" and summary["scorer"]["detector"]["name"] == "mtcnn"

    record = best_record(straight / "models" / "best.pt")
    assert record["step"] == best_steps[-1] and record["scores"]["kid"] == min(kids)
    assert load_state(straight / "models" / "checkpoint.pt")["snapshots"]["history"] == history
    assert curve(straight, "kid") == [(s, pytest.approx(k)) for s, k in zip(STEPS, kids, strict=True)]
    assert [s for s, _ in curve(straight, "afd")] == STEPS
    grids = sorted(p.name for p in (straight / "plots" / "train" / "grids").glob("snapshot_*.png"))
    assert grids == [f"snapshot_{s:07d}.png" for s in STEPS]


def test_the_scorer_is_loaded_once_per_run_not_per_snapshot(shared: Path, tmp_path: Path) -> None:
    params = snapshot_params(tmp_path, shared)
    loads = []

    def make_scorer(device):
        loads.append(device)
        return load_snapshot_scorer(params, device)

    models = Path(params.paths.models)
    paths = TrainPaths(models / "checkpoint.pt", models / "generator.pt", models / "best.pt")
    summary = train_gan(_faces(), params.train, paths, init_distributed("cpu"), make_scorer=make_scorer)
    assert [e["step"] for e in summary["snapshots"]["history"]] == STEPS and loads == [torch.device("cpu")]
    assert train_gan(_faces(), params.train, paths, init_distributed("cpu"), make_scorer=make_scorer) == summary
    assert len(loads) == 1  # a finished run loads nothing


def test_the_kept_best_is_the_generator_trained_to_the_best_step(straight: Path, shared: Path, tmp_path) -> None:
    best_step = best_record(straight / "models" / "best.pt")["step"]
    # a second run stopped there, snapshots off: also shows that scoring snapshots changes nothing trained
    rebuilt = snapshot_params(tmp_path, shared, f"train.max_steps={best_step}", "train.snapshot_kimg=0")
    train_stage.execute(rebuilt)
    models = Path(rebuilt.paths.models)
    assert_same_tensors(load_state(models / "generator.pt")["state_dict"],
                        load_state(straight / "models" / "best.pt")["state_dict"], "best.pt")  # fmt: skip
    # snapshots off: best.pt is generator.pt's bytes, without a record, and train.json has no snapshots
    assert (models / "best.pt").read_bytes() == (models / "generator.pt").read_bytes()
    assert best_record(models / "best.pt") is None
    assert "snapshots" not in json.loads((Path(rebuilt.paths.metrics) / "train.json").read_text())


def test_sample_draws_the_best_snapshot_or_the_last_and_says_which(straight: Path, shared: Path) -> None:
    params = snapshot_params(straight, shared)
    models = Path(params.paths.models)
    record = best_record(models / "best.pt")
    for snapshot, path in (("best", models / "best.pt"), ("last", models / "generator.pt")):
        chosen = snapshot_params(straight, shared, f"sample.snapshot={snapshot}")
        sample.execute(chosen)
        stamp = json.loads((Path(chosen.paths.metrics) / "sample.json").read_text())
        assert stamp["generator_sha256"] == sha256_file(path)
        drawn = draw_images(load_generator(path), None, SamplingKnobs(), 0, 0, 8, 5, "cpu").images
        assert np.array_equal(read_jpegs(Path(chosen.paths.samples)), jpeg_roundtrip(drawn, 75))
        if snapshot == "best":
            assert stamp["snapshot"] == {"asked": "best", "drawn": "best", "step": record["step"],
                                         "kimg": record["kimg"], "select_by": "kid", "scores": record["scores"]}
            scored = evaluate.execute(chosen)  # its repeat draw comes from best.pt too (else it refuses the samples)
            assert len(scored["kid"]["draws"]) == 2
        else:
            assert stamp["snapshot"] == {"asked": "last", "drawn": "last"}
    assert record["step"] != 8, "the tiny run's best is its last step: best and last drew the same generator"


def test_kill_9_and_resume_with_snapshots_ends_as_the_uninterrupted_run(straight: Path, shared: Path, tmp_path):
    params = snapshot_params(tmp_path, shared, "train.checkpoint_every=1")
    ckpt = Path(params.paths.models) / "checkpoint.pt"
    cli = [sys.executable, "-m", "stages.cli", "train", "--params", str(tmp_path / "params.yaml")]
    proc = subprocess.Popen(cli, cwd=REPO, env=SUBPROCESS_ENV, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while _step(ckpt) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = _step(ckpt)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert 3 <= killed_at < 8 and len(load_state(ckpt)["snapshots"]["history"]) >= 1
    stale = make_temp_file(ckpt.with_name("best.pt"))  # what a kill inside a write of best.pt leaves
    stale.write_bytes(b"partial")

    train_stage.execute(params)
    assert not stale.exists()
    resumed, uninterrupted = load_state(ckpt), load_state(straight / "models" / "checkpoint.pt")
    for key in STATE_KEYS:
        assert_same_tensors(resumed[key], uninterrupted[key], key)
    assert history_of(tmp_path) == history_of(straight)
    models = Path(params.paths.models)
    assert (models / "best.pt").read_bytes() == (straight / "models" / "best.pt").read_bytes()
    assert sorted(p.name for p in models.iterdir()) == [".train.lock", "best.pt", "checkpoint.pt", "generator.pt"]
    assert curve(tmp_path, "kid") == curve(straight, "kid")


def _step(path: Path) -> int:
    try:
        return torch.load(path, weights_only=True)["step"]
    except Exception:  # absent, or replaced while being read
        return -1


def test_resuming_with_other_snapshot_settings_is_refused_in_one_line(shared: Path, tmp_path: Path) -> None:
    train_stage.execute(snapshot_params(tmp_path, shared, "train.max_steps=4"))
    ckpt = tmp_path / "models" / "checkpoint.pt"
    before = ckpt.read_bytes()
    with pytest.raises(UserError, match=r"the checkpoint's snapshots were scored with other settings "
                                        r"\(train.snapshot_count: 8 -> 6\): set them back"):  # fmt: skip
        train_stage.execute(snapshot_params(tmp_path, shared, "train.max_steps=8", "train.snapshot_count=6"))
    assert ckpt.read_bytes() == before
    # patience may change
    train_stage.execute(snapshot_params(tmp_path, shared, "train.max_steps=6", "train.patience=5"))
    assert [e["step"] for e in history_of(tmp_path)] == [2, 4, 6]


def patience_stop(history: list[dict], patience: int) -> int | None:
    """The step of the first snapshot at which `patience` snapshots in a row have not beaten the best."""
    best, since = None, 0
    for entry in history:
        if best is None or entry["kid"] < best:
            best, since = entry["kid"], 0
        else:
            since += 1
        if since >= patience:
            return entry["step"]
    return None


def test_patience_stops_where_it_should_and_a_raised_patience_trains_on(straight, shared, tmp_path, caplog):
    history = history_of(straight)
    patience = next((p for p in (2, 1) if patience_stop(history, p) is not None), None)
    assert patience is not None, f"kid improved at every snapshot of the tiny run, nothing to stop: {history}"
    stop = patience_stop(history, patience)
    params = snapshot_params(tmp_path, shared, f"train.patience={patience}", "train.max_steps=16")
    with caplog.at_level(logging.INFO, logger="pipeline.train"):
        train_stage.execute(params)
    state = load_state(Path(params.paths.models) / "checkpoint.pt")
    summary = json.loads((Path(params.paths.metrics) / "train.json").read_text())
    assert state["step"] == stop and summary["steps"] == stop and summary["snapshots"]["stopped_early"] is True
    assert summary["snapshots"]["history"] == [e for e in history if e["step"] <= stop]
    best_step = history[STEPS.index(stop)]["best_step"]
    assert re.search(rf"stopping early at step {stop}: kid has not beaten .* at step {best_step} .* best.pt holds "
                     rf"step {best_step}", caplog.text)  # fmt: skip
    assert best_record(Path(params.paths.models) / "best.pt")["step"] == best_step
    assert (Path(params.paths.models) / "generator.pt").is_file()  # finished: the generator of the last step

    caplog.clear()
    before = (Path(params.paths.models) / "checkpoint.pt").read_bytes()
    with caplog.at_level(logging.INFO, logger="pipeline.train"):
        train_stage.execute(params)  # the same params: finished, nothing trained
    assert f"training already finished at step {stop}" in caplog.text
    assert (Path(params.paths.models) / "checkpoint.pt").read_bytes() == before

    train_stage.execute(snapshot_params(tmp_path, shared, "train.patience=0"))  # patience off: trains on to step 8
    resumed, uninterrupted = load_state(Path(params.paths.models) / "checkpoint.pt"), load_state(
        straight / "models" / "checkpoint.pt")  # fmt: skip
    for key in STATE_KEYS:
        assert_same_tensors(resumed[key], uninterrupted[key], key)


BAD = [
    (["train.snapshot_metrics=[kid, nope]"], r"train.snapshot_metrics: unknown metric 'nope' \(known: fid, kid"),
    (["train.select_by=nope"], r"train.select_by: unknown metric 'nope'"),
    (["train.select_by=fid"], r"train.select_by: fid is not scored: add it to train.snapshot_metrics"),
    (["train.snapshot_metrics=[copied]", "train.select_by=copied"], r"copied needs the copy index"),
    (["no-reference"], r"kid needs the FID reference, not found in .*: run `animegan fid-reference` first"),
    (["eval.afd.detector=anime"], r"afd needs the anime detector, not found at .*detector.pt: run `animegan "
                                  r"detector` first"),
]  # fmt: skip


@pytest.mark.parametrize(("setting", "message"), BAD)
def test_bad_snapshot_settings_end_in_one_line_through_the_cli(shared: Path, tmp_path: Path, setting, message):
    sets = [s for s in setting if s != "no-reference"]
    if "no-reference" in setting:
        sets.append(f"paths.fid_reference={tmp_path / 'nowhere'}")
    params = snapshot_params(tmp_path, shared)
    args = ["train", "--params", str(tmp_path / "params.yaml"), *[a for s in sets for a in ("--set", s)]]
    if setting == BAD[0][0]:  # one in a process of its own, as a user runs it
        done = subprocess.run([sys.executable, "-m", "stages.cli", *args], cwd=REPO, env=SUBPROCESS_ENV,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        code, stderr = done.returncode, done.stderr
    else:  # the others through the same CLI in this process (a loaded machine takes 10-20 s to start torch)
        result = CliRunner().invoke(app, args)
        code, stderr = result.exit_code, result.stderr
    assert code == 2, stderr[-2000:]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-2000:]
    assert re.search(message, lines[0]), lines[0]
    assert not Path(params.paths.models).exists() and not (Path(params.paths.metrics) / "train.json").exists()


def test_two_ddp_ranks_score_on_rank_0_and_stop_together(shared: Path, tmp_path: Path) -> None:
    """Only rank 0 scores; patience's verdict reaches rank 1, so both stop at the same step (or the run hangs)."""
    params = snapshot_params(tmp_path, shared, "train.patience=1", "train.max_steps=16", "train.checkpoint_every=100")
    worker = Path(__file__).with_name("ddp_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(worker),
           str(tmp_path)]  # fmt: skip
    done = subprocess.run(cmd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((Path(params.paths.metrics) / "train.json").read_text())
    history = summary["snapshots"]["history"]
    assert summary["snapshots"]["stopped_early"] is True, history
    assert summary["steps"] == patience_stop(history, 1) == history[-1]["step"] < 16
    assert load_state(Path(params.paths.models) / "checkpoint.pt")["step"] == summary["steps"]
    assert not [p for p in (tmp_path / "rank1").rglob("*") if p.is_file()]  # rank 1 wrote nothing
    assert "snapshot at step" not in (tmp_path / "rank1.log").read_text()  # nor scored
