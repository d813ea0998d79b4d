"""How long after train.max_minutes does `animegan train` exit (the budget's overshoot)?

Usage:
    python -m bench.speed.budget_overshoot [--setups dcgan r3gan-tiny] [--minutes 0.5] [--repeats 2] [--threads 1]

For the demo-size DCGAN and the r3gan-tiny recipe at the demo's size (bench/speed/train_setups.py: 1,500 faces at
32 px, batch 32) it runs `animegan train --set train.max_minutes=M` in a fresh workspace, timed from the moment the
process is started to its exit, and reports overshoot = that wall time - M x 60 s. It has two parts: the start-up
before the stage's clock starts (Python, torch and the CLI's imports: measured alone as `python -c "import
stages.cli, stages.train"`) and what comes after the deadline (the rest of the step under way, the checkpoint
write, metrics/train.json, exit). One line per run, with the steps done, seconds per step (wall_s / steps from
metrics/train.json) and the load average; rows in bench/results/budget_overshoot.json. --threads N runs torch on N
threads (OMP_NUM_THREADS): the default, every core, is slow on a shared machine, and the overshoot follows the step.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from bench.common import REPO, RESULTS, load_average, run_timed, write_result
from bench.speed.train_setups import SETUPS, animegan_train, train_workspace
from pipeline.core.errors import EXIT_STOPPED


def startup_seconds() -> float:
    """What runs before the budget's clock starts: the interpreter and the train command's imports."""
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return run_timed([sys.executable, "-c", "import stages.cli, stages.train"], cwd=REPO, env=env).seconds


def one_run(setup: str, minutes: float, work: Path, threads: int) -> dict:
    folder = train_workspace(work, setup)
    ran = animegan_train(folder, [f"train.max_minutes={minutes}"], threads=threads)
    if ran.code != EXIT_STOPPED:
        sys.exit(f"{setup}: expected exit {EXIT_STOPPED} at the budget, got {ran.code}:\n{ran.stderr[-3000:]}")
    summary = json.loads((folder / "metrics" / "train.json").read_text())
    return {
        "setup": setup,
        "threads": threads or "default",
        "budget_s": minutes * 60,
        "wall_s": round(ran.seconds, 2),
        "overshoot_s": round(ran.seconds - minutes * 60, 2),
        "steps": summary["steps"],
        "step_s": round(summary["wall_s"] / summary["steps"], 3),
        "load_average": load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--minutes", type=float, default=0.5, help="train.max_minutes of each run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of the runs (0: as a user's)")
    parser.add_argument("--json", type=Path, default=RESULTS / "budget_overshoot.json")
    args = parser.parse_args()
    startup = [startup_seconds() for _ in range(3)]
    print(f"start-up before the budget's clock (imports), 3 runs: {', '.join(f'{s:.2f}' for s in startup)} s")
    rows = []
    for setup in args.setups:
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory(prefix="animegan-budget-") as tmp:
                row = one_run(setup, args.minutes, Path(tmp), args.threads)
            rows.append(row)
            print(f"{setup:<11} threads {row['threads']}, budget {row['budget_s']:.0f} s: exit after "
                  f"{row['wall_s']:.1f} s, overshoot {row['overshoot_s']:.2f} s ({row['steps']} steps of "
                  f"{row['step_s']:.3f} s), load {row['load_average']}", flush=True)  # fmt: skip
    write_result(args.json, {"startup_s": [round(s, 2) for s in startup], "rows": rows})


if __name__ == "__main__":
    main()
