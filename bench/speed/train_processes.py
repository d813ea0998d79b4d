"""Does train.processes: 2 train faster than 1 on this machine (CPU: gloo DDP)?

Usage:
    python -m bench.speed.train_processes [--setup dcgan] [--steps 60] [--processes 1 2] [--repeats 1] [--threads 1]

Runs the demo-size DCGAN (bench/speed/train_setups.py) for --steps steps with each train.processes in a fresh
workspace, as a user would: one process uses torch's default threads (every core), the launched processes one
thread each (as torchrun's); --threads N sets OMP_NUM_THREADS=N for every run instead (1: the same threads per
process both ways). Reports the command's wall time and the training's images/s (metrics/train.json: all
processes together, after start-up). On a CPU no gain is expected: the processes share the cores one process
already uses, and add an all-reduce of the gradients per step. Rows in bench/results/train_processes.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench.common import RESULTS, load_average, write_result
from bench.speed.train_setups import SETUPS, animegan_train, train_workspace


def one_run(setup: str, processes: int, steps: int, work: Path, threads: int) -> dict:
    folder = train_workspace(work, setup, [f"train.max_steps={steps}", f"train.processes={processes}"])
    ran = animegan_train(folder, threads=threads)
    if ran.code != 0:
        sys.exit(f"train.processes={processes} failed ({ran.code}):\n{ran.stderr[-3000:]}")
    summary = json.loads((folder / "metrics" / "train.json").read_text())
    return {"setup": setup, "processes": processes, "threads": threads or "default", "steps": summary["steps"],
            "wall_s": round(ran.seconds, 2), "images_per_s": round(summary["images_per_s"], 2),
            "world_size": summary["world_size"], "load_average": load_average()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setup", default="dcgan", choices=list(SETUPS))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of every run (0: as a user's)")
    parser.add_argument("--json", type=Path, default=RESULTS / "train_processes.json")
    args = parser.parse_args()
    rows = []
    for _ in range(args.repeats):
        for processes in args.processes:
            with tempfile.TemporaryDirectory(prefix="animegan-processes-") as tmp:
                row = one_run(args.setup, processes, args.steps, Path(tmp), args.threads)
            rows.append(row)
            print(f"{args.setup} train.processes={processes} (threads {row['threads']}): {row['steps']} steps in "
                  f"{row['wall_s']:.1f} s wall, {row['images_per_s']:.1f} images/s, load {row['load_average']}",
                  flush=True)  # fmt: skip
    write_result(args.json, {"rows": rows})


if __name__ == "__main__":
    main()
