"""Wall time of the offline demo from a fresh clone, and of a second run (everything cached).

Usage:
    .venv/bin/python -m bench.speed.demo [--rev HEAD] [--keep] [--json PATH]

Clones the committed `--rev` of this repository into a temporary folder and runs `python -m stages.demo` there
twice with this venv's python (so the venv is reused, not rebuilt: creating it and installing torch is left
out of the figure; `make demo` on a machine without .venv adds that). Prints both wall times, the CPU time
(user + system, of the demo and every process under it: the figure to compare on a machine shared with other
work, where wall time stretches with the load), the load average, and the demo's metrics table; writes the times
to bench/results/demo.json (--json). --keep leaves the clone in place and prints its path.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import REPO, RESULTS, load_average, run_timed, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rev", default="HEAD", help="commit to clone")
    parser.add_argument("--keep", action="store_true", help="keep the clone")
    parser.add_argument("--json", type=Path, default=RESULTS / "demo.json", help="where the times go")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="animegan-demo-bench-"))
    clone = tmp / "clone"
    try:
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        subprocess.run(["git", "checkout", "-q", args.rev], cwd=clone, check=True)
        env = os.environ | {"ANIMEGAN_PROGRESS": "0"}
        times = []
        for attempt in ("first run (fresh clone)", "second run (cached)"):
            cpu = children_cpu_s()
            done = run_timed([sys.executable, "-m", "stages.demo"], cwd=clone, env=env)
            times.append((attempt, done.seconds, children_cpu_s() - cpu, load_average()))
        table = done.stdout[done.stdout.find("| run |") :].split("\n\n")[0]
        print(f"machine: {platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} CPUs usable")
        for attempt, seconds, cpu_s, load in times:
            print(f"{attempt:<28}{seconds:7.1f} s wall {cpu_s:7.1f} s CPU   (load average {load} at the end)")
        print(table)
        write_result(args.json, {"rev": args.rev, "runs": [{"run": a, "wall_s": s, "cpu_s": c, "load_at_end": lo}
                                                           for a, s, c, lo in times], "table": table})  # fmt: skip
        if args.keep:
            print(f"clone kept at {clone}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
