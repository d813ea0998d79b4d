"""The demo workspace the slow end-to-end tests share: demo/ at the repo root, trained for TEST_EPOCHS.

Usage (from a test):
    from demo_workspace import WORKSPACE, demo_lock, run_demo
    with demo_lock():  # while held, no other test process runs the demo in (or changes) demo/
        run_demo()     # python -m stages.demo --workspace demo --set train.epochs=3; asserts it succeeded
        shutil.copytree(WORKSPACE, ...)

Every test that needs a finished demo runs it with the same settings, so DVC finds the others' outputs cached
instead of retraining for another epoch count (bench/speed/demo.py measures the full 50-epoch demo). `make test` runs
test files in several processes (pytest-xdist), so the files that share demo/ take turns with it under a file lock.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKSPACE = REPO / "demo"
TEST_EPOCHS = 3
LOCK = REPO / ".demo-workspace.lock"

# The demo's scoring made smaller still for tests (as `--set` items): every stage and metric runs, on fewer images.
# The Inception at 299 px is the heaviest part of a CPU pipeline run (~0.18 s per image on one thread): each run
# scores 2 x 16 samples and a 32-face reference, about 12 s of it (a dozen such runs in the suite).
SAMPLE_COUNT = 16
SMALL_EVAL = (
    f"sample.count={SAMPLE_COUNT}",
    "eval.repeats=2",
    "eval.fid.reference_count=32",
    "eval.kid.reference_pool=32",
    "eval.prdc.reference_count=32",
    "eval.copies.calibration_count=50",
    "eval.afd.real_count=20",
    "detector.max_train_faces=100",
    "detector.holdout=0.05",  # 75 of the demo's 1,500 faces held out and 75 to calibrate on, not 300 and 150
    "detector.calibration=0.05",
)


@contextmanager
def demo_lock() -> Iterator[None]:
    """Holds demo/ for this process: another test process waits here until it is released."""
    with open(LOCK, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # released when the file closes, also if the process dies
        yield


def sets(*items: str) -> list[str]:
    """["--set", item, ...] for stages.demo."""
    return [word for item in items for word in ("--set", item)]


def run_demo() -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "stages.demo", "--workspace", str(WORKSPACE),
         *sets(f"train.epochs={TEST_EPOCHS}", *SMALL_EVAL)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, f"demo failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done
