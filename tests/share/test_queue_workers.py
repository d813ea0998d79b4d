"""docs/cluster.md's queue, run for real with `dvc queue` on CPU: one worker per GPU, and what a failure leaves.

A throwaway DVC repository whose one stage records the CUDA_VISIBLE_DEVICES it ran with (no GPU is needed to see
which one a worker would hand its experiment), fails at once when job.fail is set, else sleeps long enough for
both workers to take a task. Workers are started by the page's own loop (GPUS=2): `CUDA_VISIBLE_DEVICES=G dvc
queue start -j G+1` per GPU, each call adding only the one missing worker, which keeps the environment it had.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GIT_ID = ["-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false"]

pytestmark = pytest.mark.slow

STAGE = """\
#!/bin/sh
echo "gpu=${CUDA_VISIBLE_DEVICES-unset}" | tee gpu.txt
test "$1" -eq 0 || { echo "job failed on purpose" >&2; exit 3; }
sleep 25
echo "job done"
"""
DVC_YAML = """\
stages:
  work:
    cmd: sh work.sh ${job.fail}
    deps: [work.sh]
    params: [job.fail, job.id]
    outs:
      - gpu.txt:
          cache: false
"""


def readme_worker_loop(gpus: int) -> str:
    """docs/cluster.md's shell block that starts one queue worker per GPU, for this many GPUs."""
    block = re.search(r"\nGPUS=4\n(.*?\ndone\n)", (REPO / "docs" / "cluster.md").read_text(), re.S)
    assert block, "docs/cluster.md: the GPUS=4 worker loop is gone"
    return f"GPUS={gpus}\n{block.group(1)}"


def sh(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                        "DVC_NO_ANALYTICS": "1"}  # fmt: skip
    env.pop("CUDA_VISIBLE_DEVICES", None)
    done = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert not check or done.returncode == 0, f"{args}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


def exp_file(ws: Path, name: str, path: str) -> str:
    refs = sh(ws, "git", "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps").stdout.splitlines()
    [sha] = [line.split()[0] for line in refs if line.endswith(f"/{name}")]
    return sh(ws, "git", "show", f"{sha}:{path}").stdout


def workspace_files(ws: Path) -> dict[str, bytes]:
    return {str(p.relative_to(ws)): p.read_bytes() for p in sorted(ws.rglob("*"))
            if p.is_file() and ".git" not in p.parts and ".dvc" not in p.parts}  # fmt: skip


def test_one_worker_per_gpu_and_a_failed_run_leaves_the_workspace_alone(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    sh(ws, "git", "init", "-q")
    sh(ws, "dvc", "init", "-q")
    (ws / "work.sh").write_text(STAGE)
    (ws / "dvc.yaml").write_text(DVC_YAML)
    (ws / "params.yaml").write_text("job:\n  fail: 0\n  id: 0\n")
    sh(ws, "git", "add", "-A")
    sh(ws, "git", *GIT_ID, "commit", "-q", "-m", "a stage that records its GPU")
    for name, sets in (("gpu-a", ["job.id=1"]), ("gpu-b", ["job.id=2"]), ("broken", ["job.id=3", "job.fail=1"])):
        sh(ws, "dvc", "exp", "run", "--queue", "-n", name, *[a for s in sets for a in ("-S", s)])
    (ws / "notes.txt").write_text("uncommitted work of the user\n")
    before = workspace_files(ws)

    sh(ws, "bash", "-euc", readme_worker_loop(2))
    deadline = time.monotonic() + 240
    while re.search(r"Queued|Running", status := sh(ws, "dvc", "queue", "status").stdout):
        assert time.monotonic() < deadline, status
        time.sleep(3)

    assert re.search(r"gpu-a +.* Success", status) and re.search(r"gpu-b +.* Success", status), status
    assert re.search(r"broken +.* Failed", status), status
    logs = {name: sh(ws, "dvc", "queue", "logs", name).stdout for name in ("gpu-a", "gpu-b", "broken")}
    for name in ("gpu-a", "gpu-b"):
        assert exp_file(ws, name, "gpu.txt").strip() in logs[name]
    # each worker handed its experiments its own CUDA_VISIBLE_DEVICES (which worker took which one is the queue's)
    assert {g for log in logs.values() for g in re.findall(r"^gpu=\S+", log, re.M)} == {"gpu=0", "gpu=1"}, logs
    # the failure: the queue's log holds the stage's output and error; no experiment ref; the workspace untouched
    logs = logs["broken"]
    assert "job failed on purpose" in logs and "failed to reproduce 'work'" in logs, logs
    assert "broken" not in sh(ws, "dvc", "exp", "list", "--name-only").stdout
    assert workspace_files(ws) == before
    assert sh(ws, "git", "status", "--porcelain").stdout == "?? notes.txt\n"
