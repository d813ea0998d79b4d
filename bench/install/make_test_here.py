"""The README's `make test` in a fresh clone on this machine, as CI runs it: the record beside bench.install.debian13's.

    python -m bench.install.make_test_here             # the committed current branch, make's own Python choice
    python -m bench.install.make_test_here --python python3.12 --branch pkg

Clones the committed branch into a temporary folder (nothing uncommitted, no .venv) with ../shared beside it when
this checkout has one (the real-face tests read ../shared/data, as in CI), runs `make test` there (venv creation and
the install from requirements/lock.txt included, as on a new machine) with ANIMEGAN_PROGRESS=0, an empty
torch.compile cache (TORCHINDUCTOR_CACHE_DIR in the temporary folder: CI compiles from cold) and pytest's 40 slowest
tests printed in the log, and writes bench/results/make_test-py<major><minor>.json: the OS, Python, torch,
torchvision, numpy, scipy, Pillow and pydantic versions, pytest's counts and failing tests, the wall times (whole
command; pytest's own), the load average before and after, whether ~/.cache/animegan already held the calibrated
untrained backbone (full log under /var/tmp/animegan-bench-logs/make_test/).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import LOGS, REPO, RESULTS, SHARED, run_timed, write_result
from bench.install.probes import VERSIONS, pytest_counts, versions_from


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--branch", default=None, help="branch to clone (default: the current branch)")
    ap.add_argument("--python", default=None, help="make's PYTHON= (default: make picks python3.11/3.12/3.13)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds for `make test` (install included)")
    args = ap.parse_args()
    git = ["git", "-C", str(REPO)]
    branch = args.branch or subprocess.check_output([*git, "branch", "--show-current"], text=True).strip()
    (LOGS / "make_test").mkdir(parents=True, exist_ok=True)
    log = LOGS / "make_test" / "make-test.log"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")} | {"ANIMEGAN_PROGRESS": "0"}
    # a new machine has calibrated no untrained backbone yet (pipeline/metrics/inception.py keeps it there)
    backbone_cached = any(Path("~/.cache/animegan/untrained").expanduser().glob("*.pt"))
    with tempfile.TemporaryDirectory(prefix="animegan-make-test-") as tmp:
        env["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tmp) / "inductor-cache")
        env["PYTEST_ADDOPTS"] = "--durations=40"  # the slowest tests, in the log: where the next minutes are
        clone = Path(tmp) / "animegan"
        if SHARED.is_dir():
            (Path(tmp) / "shared").symlink_to(SHARED)
        subprocess.run(["git", "clone", "-q", "--branch", branch, str(REPO), str(clone)], check=True)
        commit = subprocess.check_output(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], text=True).strip()
        cmd = ["make", "test", *([f"PYTHON={args.python}"] if args.python else [])]
        load_before = Path("/proc/loadavg").read_text().split()[:3]
        ran = run_timed(cmd, cwd=clone, env=env, log=log, timeout=args.timeout, check=False)
        rc, wall = ran.code, ran.seconds
        load_after = Path("/proc/loadavg").read_text().split()[:3]
        found = subprocess.run([str(clone / ".venv" / "bin" / "python"), "-c", VERSIONS], capture_output=True,
                               text=True).stdout  # fmt: skip
    versions = versions_from(found)
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": commit,
        "branch": branch,
        "os": platform.freedesktop_os_release().get("PRETTY_NAME", platform.platform()),
        "versions": versions,
        "make_test": {"exit_code": rc, "timed_out": rc == 124, "timeout_s": args.timeout, "wall_s": round(wall, 1),
                      **pytest_counts(log)},  # fmt: skip
        "loadavg_before_after": [load_before, load_after],
        "untrained_backbone_cached_before": backbone_cached,
        "log": str(log),
        "cores": os.cpu_count(),
    }
    name = "make_test-py" + "".join(versions.get("python", "unknown").split(".")[:2]) + ".json"
    write_result(RESULTS / name, result)
    print(json.dumps(result, indent=2))
    sys.exit(0 if rc == 0 else 1)


if __name__ == "__main__":
    main()
