"""`python -m stages.demo` (what `make demo` runs): the real pipeline through `dvc repro`, in its own workspace.

It runs in the demo's usual workspace (demo/ at the repo root, gitignored), so after `make demo` in CI these runs
find everything cached. The fixture runs the demo twice: the second run must rerun no stage. It trains for
TEST_EPOCHS instead of the demo's 50 epochs and scores fewer images (`--set`, the demo's own option; see
tests/demo_workspace.py): the same path through every stage in a fraction of the time (bench/speed/demo.py measures the
full demo).
Then, in a copy of that workspace, the documented experiment commands run for real on the demo's pipeline: a course
preset through `animegan exp`, `dvc exp show`, `dvc metrics diff`, `animegan compare` / `report`, docs/cluster.md's
`dvc exp run --queue` line with `dvc queue start -j 2`, and docs/metrics.md's MTCNN evaluate line.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import yaml
from demo_workspace import REPO, TEST_EPOCHS, WORKSPACE, demo_lock, run_demo

STAGES = ("download", "clean", "detector", "fid_reference", "copy_index", "train", "sample", "evaluate")

pytestmark = pytest.mark.slow


def project_state() -> dict[str, str]:
    """Hashes of the user's own params, metrics and data: the demo must not touch them."""
    state = {}
    for top in ("params.yaml", "metrics", "data"):
        path = REPO / top
        for f in [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []:
            if f.is_file():
                state[str(f.relative_to(REPO))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return state


@pytest.fixture(scope="module")
def demo() -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    before = project_state()
    with demo_lock():
        first, second = run_demo(), run_demo()
    assert project_state() == before
    return first, second


def test_demo_prints_metrics_table_and_where_things_are(demo) -> None:
    out = demo[0].stdout
    header = "| run | FID | KID | AFD | Precision | Recall | Density | Coverage | Copied | draws |"
    assert header in out and "| workspace |" in out
    for where in ("samples:", "submission:", "report:", str(WORKSPACE / "plots" / "report.html")):
        assert where in out


def test_second_run_reuses_everything(demo) -> None:
    log = demo[1].stdout + demo[1].stderr
    assert "Running stage" not in log
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change" in log or f"Stage '{stage}' is cached" in log, stage


def test_outputs_exist(demo) -> None:
    params = yaml.safe_load((WORKSPACE / "params.yaml").read_text())
    count = params["sample"]["count"]
    samples = WORKSPACE / params["paths"]["samples"]
    assert sorted(int(p.stem) for p in samples.glob("*.jpg")) == list(range(1, count + 1))
    with tarfile.open(WORKSPACE / params["paths"]["submission"]) as tar:
        assert len(tar.getnames()) == count
    plots = WORKSPACE / params["paths"]["plots"]
    assert list((plots / "train").rglob("*.tsv")) and list((plots / "train").rglob("*.png"))
    html = (plots / "report.html").read_text()
    assert "data:image/png;base64," in html and "<svg" in html
    assert "| FID |" in (plots / "report.md").read_text()
    assert params["data"]["url"].startswith("file://") and params["eval"]["fid"]["weights"] == "untrained"


def test_metrics_have_every_field(demo) -> None:
    metrics = WORKSPACE / "metrics"
    ev = json.loads((metrics / "eval.json").read_text())
    repeats = yaml.safe_load((WORKSPACE / "params.yaml").read_text())["eval"]["repeats"]
    for key in ("fid", "kid", "afd"):
        assert set(ev[key]) >= {"mean", "std", "draws"} and len(ev[key]["draws"]) == repeats, key
    assert 0 <= ev["afd_real"] <= 1 and "afd_rel" in ev
    provenance_keys = {
        "dataset_sha256", "fid_backbone", "weights_sha256", "detector", "image_count", "repeats",
        "reference_count", "jpeg_quality", "packages", "device",
    }  # fmt: skip
    assert provenance_keys <= set(ev["provenance"])
    assert ev["provenance"]["fid_backbone"] == "untrained" or "untrained" in json.dumps(ev["provenance"])
    train = json.loads((metrics / "train.json").read_text())
    assert train  # steps, images/s, losses, wall time, device: their names are the train stage's
    data = json.loads((metrics / "data.json").read_text())
    assert data["kept"] == yaml.safe_load((REPO / "stages" / "demo_params.yaml").read_text())["faces"]["count"]


def sh(cwd: Path, *args: str, timeout: float = 600) -> str:
    """A documented command in the workspace copy, with the venv on PATH and the copy's code on PYTHONPATH (as the
    demo runs it); fails the test on a non-zero exit, returns stdout."""
    env = os.environ | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(cwd),
        "ANIMEGAN_PROGRESS": "0",
        "DVC_NO_ANALYTICS": "1",
    }
    done = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{shlex.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def experiments(demo, module_tmp) -> Path:
    """A copy of the demo workspace after `animegan exp baseline` (the course's 1-epoch sample setup)."""
    ws = module_tmp("demo_exp") / "demo"
    with demo_lock():
        shutil.copytree(WORKSPACE, ws, symlinks=True)
    sh(ws, "animegan", "exp", "baseline")
    return ws


def test_course_experiment_shows_diffs_and_compares(experiments) -> None:
    ws = experiments
    assert "baseline" in sh(ws, "animegan", "exp", "--list")
    assert "metrics/eval.json" in sh(ws, "dvc", "metrics", "show")
    assert "[baseline]" in sh(ws, "dvc", "exp", "show", "--only-changed", "--no-pager")
    diff = sh(ws, "dvc", "metrics", "diff", "HEAD", "baseline")
    assert re.search(r"metrics/eval.json +fid.mean", diff)
    assert re.search(rf"metrics/train.json +epochs +{TEST_EPOCHS}\b", diff)
    table = sh(ws, "animegan", "compare", "HEAD", "baseline")
    assert "| HEAD | baseline | FID |" in table and "Welch's two-sided t-test" in table
    sh(ws, "animegan", "report", "HEAD", "baseline")
    assert "## baseline" in (ws / "plots" / "report.md").read_text()


def test_documented_queue_runs_an_experiment_in_a_worker(experiments) -> None:
    ws = experiments
    page = (REPO / "docs" / "cluster.md").read_text()
    queue_line = re.search(r"`(dvc exp run --queue [^`]+)`", page).group(1)
    # the page's 50 epochs are a GPU's work: one epoch shows the queue, the last -S wins
    sh(ws, *shlex.split(queue_line), "-S", "train.epochs=1")
    assert "`dvc queue start -j 2`" in page
    sh(ws, "dvc", "queue", "start", "-j", "2")
    deadline = time.monotonic() + 600
    while re.search(r"Queued|Running", status := sh(ws, "dvc", "queue", "status")) and time.monotonic() < deadline:
        time.sleep(1)
    assert re.search(r"wgan +.* Success", status), status
    shown = json.loads(sh(ws, "dvc", "exp", "show", "--json"))
    runs = {r["name"]: r for rev in shown for exp in rev.get("experiments") or [] for r in exp["revs"]}
    params = runs["wgan"]["data"]["params"]["params.yaml"]["data"]
    assert params["train"]["loss"] == "wgan" and params["train"]["optimizer"] == "rmsprop"
    assert "| baseline | wgan | FID |" in sh(ws, "animegan", "compare", "baseline", "wgan")


def test_documented_detector_commands(experiments) -> None:
    ws = experiments
    ev = json.loads((ws / "metrics" / "eval.json").read_text())
    assert ev["provenance"]["detector"]["name"] == "anime"  # the default, trained by the pipeline's detector stage
    page = (REPO / "docs" / "metrics.md").read_text()
    command = re.search(r"\n(animegan evaluate --set eval.afd.detector=mtcnn)", page).group(1)
    sh(ws, *shlex.split(command))
    ev = json.loads((ws / "metrics" / "eval.json").read_text())
    assert ev["provenance"]["detector"]["name"] == "mtcnn" and 0 <= ev["afd"]["mean"] <= 1
