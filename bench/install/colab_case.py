"""Colab's case on this machine: `pip install -e .` into a Python that already has the platform's torch keeps it.

    .venv/bin/python -m bench.install.colab_case --python /path/to/python3.13            # Colab's versions
    .venv/bin/python -m bench.install.colab_case --python /path/to/python3.12 --platform kaggle --epochs 2

A fresh venv (--python; Colab runs 3.13) gets the platform's preinstalled versions from the table in
bench/install/platforms.py, which tests/test_packaging.py checks pyproject's ranges against (Colab: torch 2.11.0,
torchvision 0.26.0, numpy 2.1.3, scipy 1.16.3, Pillow 11.3.0, pydantic 2.13.4; PyPI's builds, a GB-scale download
the first time), then `pip install -e .` exactly as the README says (no lock, no extras). It checks that none of
those versions moved, runs clean on the shared 5k zip (is faces.npy's hash the recorded one under the platform's
Pillow?) and a short demo (`python -m stages.demo --set train.epochs=N`), and writes
bench/results/<platform>_case.json with the versions, what pip added, the exit codes, wall times and the load
average.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from bench.common import LOGS, REPO, RESULTS, SHARED_FACES_SHA256, SHARED_ZIP, run_timed, write_result
from bench.install.platforms import PLATFORMS
from bench.install.probes import CLEAN


def freeze(py: str) -> dict[str, str]:
    out = subprocess.run([py, "-m", "pip", "list", "--format=json"], check=True, capture_output=True, text=True)
    return {re.sub(r"[-_.]+", "-", p["name"]).lower(): p["version"] for p in json.loads(out.stdout)}


def timed(cmd: list[str], log: Path, **kw) -> tuple[int, float]:
    ran = run_timed(cmd, log=log, check=False, **kw)
    return ran.code, round(ran.seconds, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default="python3.13")
    ap.add_argument("--platform", choices=sorted(PLATFORMS), default="colab")
    ap.add_argument("--venv", type=Path, default=Path("/var/tmp/animegan-colab-case"))
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    have = {k: v for k, v in PLATFORMS[args.platform].items() if k != "python"}
    logs = LOGS / f"{args.platform}_case"  # full logs stay out of the repo
    logs.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(args.venv, ignore_errors=True)
    subprocess.run([args.python, "-m", "venv", str(args.venv)], check=True)
    py = str(args.venv / "bin" / "python")
    subprocess.run([py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    rc, t_pre = timed([py, "-m", "pip", "install", *(f"{k}=={v}" for k, v in have.items())], logs / "preinstall.log")
    if rc:
        sys.exit(f"installing the platform's versions failed: see {logs / 'preinstall.log'}")
    before = freeze(py)
    rc_install, t_install = timed([py, "-m", "pip", "install", "-e", str(REPO)], logs / "pip-install-e.log")
    after = freeze(py)
    moved = {k: [before.get(k), after.get(k)] for k in have if before.get(k) != after.get(k)}
    added = sorted(set(after) - set(before) - {"animegan-pipeline"})

    # faces.npy under the platform's Pillow, when the shared zip is here.
    faces = None
    if SHARED_ZIP.is_file():
        work = args.venv / "faces"
        shutil.rmtree(work, ignore_errors=True)
        with zipfile.ZipFile(SHARED_ZIP) as z:
            z.extractall(work / "raw")
        out = subprocess.run([py, "-c", CLEAN, str(work / "raw" / "faces"), str(work / "clean")], check=True,
                             capture_output=True, text=True, env={**os.environ, "ANIMEGAN_PROGRESS": "0"})
        faces = json.loads(out.stdout.strip().splitlines()[-1])
        faces["recorded"] = faces["sha256"] == SHARED_FACES_SHA256
        shutil.rmtree(work)

    workspace = args.venv / "demo"
    env = {**os.environ, "ANIMEGAN_PROGRESS": "0", "PATH": f"{args.venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    rc_demo, t_demo = timed(
        [py, "-m", "stages.demo", "--workspace", str(workspace), "--set", f"train.epochs={args.epochs}"],
        logs / "demo.log", cwd=REPO, env=env,
    )
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    eval_json = workspace / "metrics" / "eval.json"
    demo_metrics = json.loads(eval_json.read_text()) if eval_json.is_file() else None
    pyver = subprocess.check_output([py, "-c", "import sys; print(sys.version.split()[0])"], text=True).strip()
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "platform": args.platform,
        "python": pyver,
        "preinstalled": have,
        "preinstall_s": t_pre,
        "pip_install_e": {"exit_code": rc_install, "wall_s": t_install, "moved": moved, "added": len(added),
                          "added_packages": added},
        "versions_after": {k: after.get(k) for k in have},
        "faces_npy": faces,
        "demo": {"command": f"python -m stages.demo --set train.epochs={args.epochs}", "exit_code": rc_demo,
                 "wall_s": t_demo, "eval_json_written": demo_metrics is not None,
                 "fid": (demo_metrics or {}).get("fid")},
        "loadavg_before_after_demo": [load_before, load_after],
    }
    write_result(RESULTS / f"{args.platform}_case.json", result)
    print(json.dumps(result, indent=2))
    shutil.rmtree(workspace, ignore_errors=True)
    if rc_install or moved or rc_demo:
        sys.exit(1)


if __name__ == "__main__":
    main()
