"""Size and cost of each model: parameters, forward GFLOPs per image, training GFLOPs per real image, CPU images/s.

Usage:
    python -m bench.models.flops                         # 64 px: dcgan and the r3gan presets, table + JSON
    python -m bench.models.flops --image-size 32 --models dcgan r3gan-tiny --batch 16 --steps 5
    python -m bench.models.flops --no-timing             # FLOPs and parameters only (seconds, not minutes)
    python -m bench.models.flops --timed dcgan r3gan-tiny r3gan-small   # which models to time (default: the first
                                                                        # two; small and paper take minutes a step)

FLOPs are counted by torch.utils.flop_counter.FlopCounterMode (a multiply-add is 2 FLOPs; convolutions, linear
layers and their backward passes, the resampling filters included; elementwise ops not counted), with its formula
for a convolution's backward replaced by one that respects groups (bench/models/flop_count.py). Forward: G(z) and
D(image) for one image. Training: one step of bench/models/plain_step.py's plain training step (the loop's work per
step: the critic step on a real and a fake batch, the generator step reusing the fake batch; r3gan with R1 and R2 on the
critic every step, each a double backward; dcgan with the course's BCE loss), divided by the real images in it;
"no R1/R2" is the same step without the penalties, so lazy regularisation every k steps costs about
no-R1/R2 + (with - without) / k. images/s: real images per second of that step on this machine (fp32, eager,
--batch images, median of --steps timed steps after one warm-up step), the step's own cost only (no data loading,
no EMA). The JSON (default bench/results/model_flops-<size>px.json) records the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from bench.common import RESULTS, write_result
from bench.models.flop_count import flops
from bench.models.plain_step import NETWORKS, PlainStep, build


def forward_gflops(model: str, image_size: int) -> tuple[int, int, float, float]:
    g, d, z_dim = build(model, image_size)
    g.eval(), d.eval()
    z = torch.randn(1, z_dim)
    with torch.no_grad():
        image = g(z)
        return (sum(p.numel() for p in g.parameters()), sum(p.numel() for p in d.parameters()),
                flops(lambda: g(z)) / 1e9, flops(lambda: d(image)) / 1e9)  # fmt: skip


def training_gflops(model: str, image_size: int, penalties: bool, batch: int = 2) -> float:
    """Counted on the meta device: shapes only, the same count as on the CPU (checked) in seconds, not minutes."""
    meta = torch.device("meta")
    step = PlainStep(model, image_size, meta, False, False, None, penalties=penalties)
    real = torch.empty(batch, 3, image_size, image_size, device=meta)
    return flops(lambda: step(real)) / batch / 1e9


def images_per_s(model: str, image_size: int, batch: int, steps: int) -> float:
    torch.manual_seed(0)
    step = PlainStep(model, image_size, torch.device("cpu"), False, False, None)
    real = torch.rand(batch, 3, image_size, image_size) * 2 - 1
    step(real)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step(real)
        times.append(time.perf_counter() - started)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=NETWORKS, default=list(NETWORKS))
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--timed", nargs="+", choices=NETWORKS, default=["dcgan", "r3gan-tiny"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    size = args.image_size
    load = os.getloadavg()[0]
    print(f"{size} px, torch {torch.__version__}, {torch.get_num_threads()} threads, load {load:.1f}")
    header = "| model | G params | D params | G fwd GFLOPs/img | D fwd GFLOPs/img | train GFLOPs/real img | no R1/R2 |"
    print(header + ("" if args.no_timing else " CPU img/s |"))
    print("|---" * (header.count("|") - 1 + (0 if args.no_timing else 1)) + "|")
    rows = []
    for model in args.models:
        g_params, d_params, g_fwd, d_fwd = forward_gflops(model, size)
        train = training_gflops(model, size, penalties=True)
        plain = training_gflops(model, size, penalties=False) if model.startswith("r3gan") else train
        row = {"model": model, "g_params": g_params, "d_params": d_params, "g_forward_gflops": round(g_fwd, 3),
               "d_forward_gflops": round(d_fwd, 3), "train_gflops_per_real_image": round(train, 3),
               "train_gflops_without_penalties": round(plain, 3)}  # fmt: skip
        cells = f"| {model} | {g_params:,} | {d_params:,} | {g_fwd:.3f} | {d_fwd:.3f} | {train:.2f} | {plain:.2f} |"
        if not args.no_timing:
            timed = model in args.timed
            row["cpu_images_per_s"] = round(images_per_s(model, size, args.batch, args.steps), 2) if timed else None
            cells += f" {row['cpu_images_per_s'] if timed else '-'} |"
        rows.append(row)
        print(cells, flush=True)
    report = {"image_size": size, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "machine": platform.processor() or platform.machine(), "load_before": round(load, 1),
              "load_after": round(os.getloadavg()[0], 1), "batch": args.batch, "steps": args.steps,
              "rows": rows}  # fmt: skip
    write_result(args.json or RESULTS / f"model_flops-{size}px.json", report)


if __name__ == "__main__":
    main()
