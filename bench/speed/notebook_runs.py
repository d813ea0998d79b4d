"""How long does the notebook take on this CPU for a student's Run all: cut off, resumed, results only, extended?

Usage (from the repository root):
    .venv/bin/python -m bench.speed.notebook_runs [--repeats 1]

It runs the notebook test that walks a student's four Run alls in one workspace
(tests/notebooks/test_notebook.py::test_run_all_cut_off_then_resumes_then_shows_results_then_extends: nbclient, a
real kernel, `animegan exp baseline` through DVC on 300 generated faces at 32 px with the demo's small models, 4
epochs then 5) and reads the wall times it prints: the first Run all until the kernel is killed once training has
written a checkpoint, the second (resumes, finishes, samples, scores), the third (results only: no stage runs), the
fourth (EPOCHS raised: extends). The test asserts what each run must do; this bench only records how long each
took, with the load average, in bench/results/notebook_runs.json. Its figures are the notebook's overhead and the
small pipeline's, not a course-size training (see the presets' table for those).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from bench.common import REPO, RESULTS, load_average, run_timed, write_result

TEST = "tests/notebooks/test_notebook.py::test_run_all_cut_off_then_resumes_then_shows_results_then_extends"
PRINTED = re.compile(
    r"cut off after (?P<cut_off_s>[\d.]+) s \(at step (?P<cut_at>\d+) of (?P<steps>\d+)\), resumed run "
    r"(?P<resumed_s>[\d.]+) s, results-only run (?P<results_only_s>[\d.]+) s, extended run (?P<extended_s>[\d.]+) s"
)


def one_run() -> dict:
    load_before = load_average()
    env = os.environ | {"ANIMEGAN_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", TEST]
    ran = run_timed(cmd, cwd=REPO, env=env, check=False)
    found = PRINTED.search(ran.stdout)
    if ran.code != 0 or found is None:
        sys.exit(f"the notebook test failed (exit {ran.code}):\n{ran.stdout[-3000:]}{ran.stderr[-2000:]}")
    row = {k: float(v) if k.endswith("_s") else int(v) for k, v in found.groupdict().items()}
    return {**row, "load_average_before": load_before, "load_average_after": load_average()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.speed.notebook_runs", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    rows = []
    for i in range(args.repeats):
        row = one_run()
        rows.append(row)
        print(
            f"run {i + 1}: cut off after {row['cut_off_s']:.1f} s (step {row['cut_at']} of {row['steps']}), "
            f"resumed {row['resumed_s']:.1f} s, results only {row['results_only_s']:.1f} s, extended "
            f"{row['extended_s']:.1f} s; load average {row['load_average_before']} -> {row['load_average_after']}"
        )
    write_result(RESULTS / "notebook_runs.json", {"rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
