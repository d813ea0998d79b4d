"""Wall time and size of sharing the demo's run through a DVC remote, against retraining it on the other machine.

Usage:
    .venv/bin/python -m bench.speed.share [--workspace demo] [--no-retrain] [--json PATH]

Copies the demo's workspace (run `make demo` first; it is reused as is) to a temporary A, gives it a folder DVC
remote and a bare git `origin`, and times `dvc push`. Then, in a fresh clone B: `animegan pull` and `dvc repro`
(which must rerun nothing). What a teammate would otherwise run, in a clone R: pull only the inputs of training
(clean faces, FID reference, detector) and run train, sample and evaluate (`dvc repro -f -s`). Prints the times,
the bytes and files pushed, and whether B's and R's metrics/eval.json equal A's byte for byte; writes them to
bench/results/share.json (--json).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import REPO, RESULTS, load_average, run_timed, write_result

GIT_ID = ["-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c", "commit.gpgsign=false"]


def sh(cwd: Path, *args: str) -> tuple[float, str]:
    env = os.environ | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(cwd),
        "ANIMEGAN_PROGRESS": "0",
        "DVC_NO_ANALYTICS": "1",
    }
    ran = run_timed(list(args), cwd=cwd, env=env)
    return ran.seconds, ran.stdout + ran.stderr


def tree_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", type=Path, default=REPO / "demo", help="a finished demo workspace")
    parser.add_argument("--no-retrain", action="store_true", help="skip the retraining comparison")
    parser.add_argument("--json", type=Path, default=RESULTS / "share.json", help="where the figures go")
    args = parser.parse_args()
    if not (args.workspace / "dvc.lock").is_file():
        sys.exit(f"{args.workspace} has no finished run: run `make demo` first")
    tmp = Path(tempfile.mkdtemp(prefix="animegan-share-bench-"))
    try:
        a, store, origin = tmp / "A", tmp / "store", tmp / "origin.git"
        shutil.copytree(args.workspace, a, symlinks=True)
        sh(tmp, "git", "init", "-q", "--bare", str(origin))
        sh(a, "dvc", "remote", "add", "-d", "store", str(store))
        sh(a, "git", "add", ".dvc/config")
        sh(a, "git", *GIT_ID, "commit", "-q", "-m", "DVC remote")
        sh(a, "git", "remote", "add", "origin", str(origin))
        git_push_s, _ = sh(a, "git", "push", "-q", "origin", "HEAD:refs/heads/main")
        push_s, _ = sh(a, "dvc", "push")
        pushed_bytes, pushed_files = tree_size(store)

        b, r = tmp / "B", tmp / "R"
        clone_s, _ = sh(tmp, "git", "clone", "-q", "-b", "main", str(origin), str(b))
        pull_s, _ = sh(b, "animegan", "pull")
        repro_s, log = sh(b, "dvc", "repro")
        reran = "Running stage" in log
        same_b = (b / "metrics/eval.json").read_bytes() == (a / "metrics/eval.json").read_bytes()

        print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} CPUs usable, "
              f"load {load_average()}")  # fmt: skip
        print(f"pushed: {pushed_bytes / 1e6:.1f} MB in {pushed_files} files (DVC remote, a local folder)")
        print(f"A: git push {git_push_s:.1f} s, dvc push {push_s:.1f} s")
        print(f"B: git clone {clone_s:.1f} s, animegan pull {pull_s:.1f} s, dvc repro {repro_s:.1f} s "
              f"({'reran a stage!' if reran else 'reran nothing'}); eval.json equal to A's: {same_b}")  # fmt: skip
        figures = {"pushed_mb": pushed_bytes / 1e6, "pushed_files": pushed_files, "git_push_s": git_push_s,
                   "dvc_push_s": push_s, "clone_s": clone_s, "pull_s": pull_s, "repro_s": repro_s,
                   "repro_reran_a_stage": reran, "eval_json_equal": same_b}  # fmt: skip
        if args.no_retrain:
            write_result(args.json, figures)
            return
        sh(tmp, "git", "clone", "-q", "-b", "main", str(origin), str(r))
        inputs_s, _ = sh(r, "dvc", "pull", "clean", "fid_reference", "detector")
        retrain_s, log = sh(r, "dvc", "repro", "--force", "--single-item", "train", "sample", "evaluate")
        same_r = (r / "metrics/eval.json").read_bytes() == (a / "metrics/eval.json").read_bytes()
        ran = [line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage")]
        print(f"R (retrain instead): pull inputs {inputs_s:.1f} s, dvc repro {retrain_s:.1f} s (ran {', '.join(ran)}); "
              f"eval.json equal to A's: {same_r}")  # fmt: skip
        total_b, total_r = clone_s + pull_s + repro_s, inputs_s + retrain_s
        print(f"pull + repro {total_b:.1f} s against retraining {total_r:.1f} s: {total_r / total_b:.1f}x")
        write_result(args.json, figures | {"retrain_inputs_s": inputs_s, "retrain_s": retrain_s,
                                           "retrain_eval_json_equal": same_r, "retrain_ran": ran})  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
