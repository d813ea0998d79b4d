"""Benchmark the clean stage: images/s and peak RSS, on real faces and on generated sets of growing size.

Usage:
    .venv/bin/python -m bench.speed.clean                 # real 5k zip + generated 5,000 and 50,000 faces
    .venv/bin/python -m bench.speed.clean --counts 1000 20000 --zip ../shared/data/anime-faces-5k.zip --workdir /tmp/b

Each zip is extracted (as the download stage does) into its own folder; then `stages.clean.run` runs in a fresh
child process, timed inside the child (imports excluded). Its peak RSS is the child's own VmHWM from
/proc/self/status: Linux carries the parent's RSS at fork time into a child's ru_maxrss (getrusage/wait4), which
made the figure track this script's memory rather than the stage's. A child that only imports the same modules
gives the baseline. Peak memory that does
not grow with N shows as the same "above baseline" figure for every N. Generated zips are kept in --workdir and
reused by later runs. The table goes to bench/results/clean.json (--json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, RESULTS, SHARED_ZIP, run_timed, write_result
from pipeline.data.archive import extract_faces
from pipeline.data.cartoon import write_faces_zip

# Runs in a fresh interpreter started in the repository root (so `bench` imports).
CHILD = """
import json, sys, time
from bench.common import peak_rss_mib as peak_mib
from pipeline.core.config import load_params
import stages.clean

if sys.argv[1] == "baseline":
    print(json.dumps({"rss": peak_mib()}))
    raise SystemExit
root = sys.argv[2]
params = load_params(sys.argv[1], [f"paths.raw={root}/raw", f"paths.clean={root}/clean",
                                   f"paths.metrics={root}/metrics", f"paths.plots={root}/plots"])
t = time.perf_counter()
stages.clean.execute(params)
seconds = time.perf_counter() - t
kept = json.load(open(f"{root}/metrics/data.json"))["kept"]
print(json.dumps({"seconds": seconds, "kept": kept, "rss": peak_mib()}))
"""


def run_child(*args: str) -> dict:
    """Run CHILD with args in a fresh interpreter; return its JSON line (with its peak RSS in MiB)."""
    env = os.environ | {"ANIMEGAN_PROGRESS": "0", "PYTHONPATH": str(REPO)}
    ran = run_timed([sys.executable, "-c", CHILD, *args], cwd=REPO, env=env)
    return json.loads(ran.stdout.strip().splitlines()[-1])


def bench_zip(label: str, zip_path: Path, work: Path, params: Path) -> dict:
    root = work / label
    shutil.rmtree(root, ignore_errors=True)
    extract_faces(zip_path, root / "raw", max_entries=1_000_000, max_total_bytes=64 << 30)
    files = sum(1 for _ in (root / "raw" / "faces").iterdir())
    result = run_child(str(params), str(root))
    shutil.rmtree(root, ignore_errors=True)
    return {"label": label, "n": files} | result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zip", type=Path, default=SHARED_ZIP,
                    help="real faces in the course layout (skipped when missing)")  # fmt: skip
    ap.add_argument("--counts", type=int, nargs="*", default=[5000, 50000], help="generated face counts")
    ap.add_argument("--size", type=int, default=96, help="generated face side (the course's is 96)")
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "animegan-bench-clean")
    ap.add_argument("--json", type=Path, default=RESULTS / "clean.json", help="where the table goes")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    rows = []
    if args.zip.is_file():
        rows.append(bench_zip("real", args.zip, args.workdir, args.params))
    else:
        print(f"(no real zip at {args.zip}: skipped)")
    for count in args.counts:
        zip_path = args.workdir / f"cartoon-{count}-{args.size}.zip"
        if not zip_path.exists():
            t = time.perf_counter()
            write_faces_zip(zip_path, count=count, size=args.size, seed=0)
            print(f"generated {zip_path.name} in {time.perf_counter() - t:.0f} s")
        rows.append(bench_zip(f"generated-{count}", zip_path, args.workdir, args.params))
    baseline = run_child("baseline")["rss"]

    print(f"clean stage, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}; baseline RSS (imports only) {baseline:.0f} MiB")  # fmt: skip
    print(f"{'input':<18}{'files':>8}{'kept':>8}{'seconds':>9}{'images/s':>10}{'peak RSS MiB':>14}{'above base':>12}")
    for r in rows:
        print(f"{r['label']:<18}{r['n']:>8}{r['kept']:>8}{r['seconds']:>9.1f}{r['n'] / r['seconds']:>10.0f}"
              f"{r['rss']:>14.0f}{r['rss'] - baseline:>12.0f}")  # fmt: skip
    write_result(args.json, {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                             "python": platform.python_version(), "baseline_rss_mib": baseline, "rows": rows})


if __name__ == "__main__":
    main()
