"""Runs travel between machines through a DVC remote and git, with DVC's and git's own commands, on loopback.

Workspace A is a copy of the demo's workspace (stages.demo: the real pipeline, cached after `make demo`), the
training machine. It gets a DVC remote in a local folder (a real DVC remote, as a shared folder would be) and a
bare git repository as `origin`, pushes, and runs two course experiments through `animegan exp ... --push origin`.
B is a fresh clone, the laptop: `animegan pull` brings every output, `dvc repro` reruns no stage, and the pulled
experiments compare and report exactly as on A. A clone pulling from a remote that lacks one object is refused in
one line, before anything in it changes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from demo_workspace import WORKSPACE, demo_lock, run_demo

GIT_ID = ["-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false"]
STAGES = ("download", "clean", "detector", "fid_reference", "copy_index", "train", "sample", "evaluate")
# what the teammate must get: the models, the samples, the clean faces and the FID reference (files and folders)
PULLED = ("models", "samples", "submission.tgz", "data/clean", "data/fid_reference", "data/copy_index", "plots/train")
GROUP = "baseline+baseline-seed1"  # a seed group: the course's baseline trained with its seed and with seed 1

pytestmark = pytest.mark.slow


def sh(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A command as a user runs it in that clone: the venv on PATH, the clone's own code imported by its stages."""
    env = os.environ | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(cwd),
        "ANIMEGAN_PROGRESS": "0",
        "DVC_NO_ANALYTICS": "1",
    }
    done = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert not check or done.returncode == 0, f"{args}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def workspace_files(ws: Path) -> dict[str, bytes]:
    """Every file of a clone outside git's and DVC's own folders and Python's bytecode caches (the command under test
    imports the clone's code), with its bytes."""
    return {str(p.relative_to(ws)): p.read_bytes() for p in sorted(ws.rglob("*"))
            if p.is_file() and not {".git", ".dvc", "__pycache__"} & set(p.relative_to(ws).parts)}  # fmt: skip


NOT_OUTPUTS = {".train.lock"}  # the workspace lock of the machine that trained (git-ignored, never pushed)


def digests(ws: Path, paths: tuple[str, ...]) -> dict[str, str]:
    """sha256 of every file under these files or folders of a workspace, outputs only."""
    files = [f for p in paths for f in ([ws / p] if (ws / p).is_file() else sorted((ws / p).rglob("*")))]
    return {
        str(f.relative_to(ws)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in files
        if f.is_file() and f.name not in NOT_OUTPUTS
    }


@dataclass
class Shared:
    root: Path
    a: Path  # the training machine's workspace
    store: Path  # the DVC remote (a folder)
    origin: Path  # the git remote (bare)
    pushed: dict[str, str]  # digests of A's PULLED files as pushed, before the experiments changed A's workspace


@pytest.fixture(scope="module")
def shared(module_tmp) -> Shared:
    root = module_tmp("share")
    a, store, origin = root / "A", root / "store", root / "origin.git"
    with demo_lock():
        run_demo()  # the demo as tests/test_demo.py runs it, so one trains and the other finds it cached
        shutil.copytree(WORKSPACE, a, symlinks=True)
    sh(root, "git", "init", "-q", "--bare", str(origin))
    sh(a, "dvc", "remote", "add", "-d", "store", str(store))  # the README's line, with a shared folder
    sh(a, "git", "add", ".dvc/config")
    sh(a, "git", *GIT_ID, "commit", "-q", "-m", "DVC remote")
    sh(a, "git", "remote", "add", "origin", str(origin))
    sh(a, "git", "push", "-q", "origin", "HEAD:refs/heads/main")
    sh(a, "dvc", "push")
    pushed = digests(a, PULLED)
    for seed in ([], ["--seed", "1"]):  # each pushed as soon as it finished: its ref to origin, its outputs to store
        sh(a, "animegan", "exp", "baseline", *seed, "--push", "origin")
    return Shared(root, a, store, origin, pushed)


def clone(shared: Shared, name: str) -> Path:
    target = shared.root / name
    sh(shared.root, "git", "clone", "-q", "-b", "main", str(shared.origin), str(target))
    return target


def test_pull_then_repro_reruns_nothing_and_gives_the_same_outputs(shared) -> None:
    b = clone(shared, "B")
    sh(b, "animegan", "pull")
    assert digests(b, PULLED) == shared.pushed
    assert any(f.startswith("models/") for f in shared.pushed) and any(f.startswith("data/") for f in shared.pushed)
    log = sh(b, "dvc", "repro").stdout
    assert "Running stage" not in log, log
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change" in log, stage
    head_eval = sh(shared.a, "git", "show", "HEAD:metrics/eval.json").stdout
    assert (b / "metrics" / "eval.json").read_text() == head_eval  # the training machine's bytes, not retrained
    assert sh(b, "git", "status", "--porcelain").stdout == ""  # and nothing for git to record either


def test_pulled_experiments_compare_and_report_as_on_the_training_machine(shared) -> None:
    b = clone(shared, "B2")
    assert set(sh(b, "dvc", "exp", "list", "--name-only", "origin").stdout.split()) >= {"baseline", "baseline-seed1"}
    for name in ("baseline", "baseline-seed1"):
        sh(b, "dvc", "exp", "pull", "origin", name)  # the git ref from origin, its cached outputs from the store
    for runs, shown in ((("HEAD", "baseline", "baseline-seed1"), "| baseline | baseline-seed1 | FID |"),
                        (("HEAD", GROUP), f"| {GROUP} |")):  # fmt: skip
        table = sh(b, "animegan", "compare", *runs).stdout
        assert table == sh(shared.a, "animegan", "compare", *runs).stdout
        assert shown in table, table
    report = ("animegan", "report", "HEAD", "baseline", "baseline-seed1", "--out", "compare/report.html")
    sh(b, *report)
    sh(shared.a, *report)
    for name in ("report.html", "report.md"):  # curves (git) and pictures (pulled from the DVC remote) alike
        assert (b / "compare" / name).read_bytes() == (shared.a / "compare" / name).read_bytes(), name
    assert "## baseline-seed1" in (b / "compare" / "report.md").read_text()


def test_a_remote_lacking_an_object_is_refused_in_one_line_and_nothing_changes(shared) -> None:
    c = clone(shared, "C")
    broken = shared.root / "broken"
    shutil.copytree(shared.store, broken)
    generator = re.search(r"path: models/generator.pt\n\s+hash: md5\n\s+md5: (\w+)",
                          (c / "dvc.lock").read_text()).group(1)  # fmt: skip
    (broken / "files" / "md5" / generator[:2] / generator[2:]).unlink()
    sh(c, "dvc", "remote", "add", "broken", str(broken))
    before = workspace_files(c)

    done = sh(c, "animegan", "pull", "--remote", "broken", check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "models/generator.pt" in done.stderr and "'broken'" in done.stderr
    assert workspace_files(c) == before

    # DVC's own pull, for contrast: it checks out what it has and fails on the rest, half-pulled
    assert sh(c, "dvc", "pull", "--remote", "broken", check=False).returncode != 0
    assert (c / "samples").is_dir() and not (c / "models" / "generator.pt").exists()
