"""Training images/s at 64 px for dcgan and the r3gan presets, with bf16, channels_last and compile on and off.

Usage:
    python -m bench.models.gpu_speed                     # a CUDA machine: JSON to bench/results/gpu-<device>.json
    python -m bench.models.gpu_speed --json $OUT/gpu.json --budget-s 420 --models dcgan r3gan-tiny r3gan-paper
    python -m bench.models.gpu_speed --full              # all 8 on/off combinations instead of the 6 below
    python -m bench.models.gpu_speed --quick             # any machine (CPU here): dcgan and r3gan-tiny at 16 px,
                                                         # batch 2, one warm-up and one timed step per set

What it times: one plain training step built directly from the models (bench/models/plain_step.py: the training
loop's model families were being written in parallel when this was prepared), the same work per step as
pipeline/train/loop.py's loop, with and without each speed option.
Option sets (bf16, channels_last, compile): none, bf16, channels_last, bf16+channels_last, compile, all three;
eager sets run first for every model, compiled ones after, so a run cut short by --budget-s keeps the basics.
Each set runs --warmup steps (compilation happens there), then --steps timed steps between CUDA synchronisations;
images/s counts real images per second. The JSON is rewritten after every set: device name, torch version,
batch size and, per set, images/s, ms per step and peak GPU memory. --quick compiles with the "eager" backend
(checks the code path, not the speed) and runs on CPU unless CUDA is there.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import re
import time
from pathlib import Path

import torch

from bench.common import RESULTS, write_result
from bench.models.plain_step import NETWORKS, PlainStep

EAGER_SETS = ((False, False, False), (True, False, False), (False, True, False), (True, True, False))
COMPILED_SETS = ((False, False, True), (True, True, True))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model: str, options: tuple[bool, bool, bool], args: argparse.Namespace, device: torch.device) -> dict:
    bf16, channels_last, use_compile = options
    backend = ("eager" if args.quick else "inductor") if use_compile else None
    torch.manual_seed(0)
    step = PlainStep(model, args.image_size, device, bf16, channels_last, backend)
    real = torch.rand(args.batch, 3, args.image_size, args.image_size, device=device) * 2 - 1
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(args.warmup):
        step(real)
    synchronize(device)
    warm = time.perf_counter()
    for _ in range(args.steps):
        step(real)
    synchronize(device)
    seconds = time.perf_counter() - warm
    return {
        "model": model, "bf16": bf16, "channels_last": channels_last, "compile": use_compile,
        "images_per_s": round(args.batch * args.steps / seconds, 2),
        "ms_per_step": round(1000 * seconds / args.steps, 2), "warmup_s": round(warm - started, 2),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
    }  # fmt: skip


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=NETWORKS, default=None, help=f"default: all of {NETWORKS}")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--budget-s", type=float, default=480, help="start no new set after this many s (0: none)")
    parser.add_argument("--full", action="store_true", help="all 8 on/off combinations")
    parser.add_argument("--quick", action="store_true", help="dcgan, r3gan-tiny; 16 px, batch 2, 1+1 steps; no budget")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.image_size, args.batch, args.warmup, args.steps, args.budget_s = 16, 2, 1, 1, 0
    args.models = args.models or (["dcgan", "r3gan-tiny"] if args.quick else list(NETWORKS))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # as the loop does
    name = device_name(device)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]
    out = args.json or RESULTS / f"gpu-{slug}{'-quick' if args.quick else ''}.json"
    sets = list(itertools.product((False, True), repeat=3)) if args.full else [*EAGER_SETS, *COMPILED_SETS]
    plan = [(m, s) for s in sets if not s[2] for m in args.models] + [(m, s) for s in sets if s[2] for m in args.models]
    report = {"device": name, "torch": torch.__version__, "image_size": args.image_size, "batch": args.batch,
              "warmup": args.warmup, "steps": args.steps, "quick": args.quick, "runs": [], "skipped": []}  # fmt: skip
    began = time.perf_counter()
    print(f"{name}, torch {torch.__version__}, {args.image_size} px, batch {args.batch}")
    for model, options in plan:
        label = f"{model:12s} bf16={options[0]!s:5s} channels_last={options[1]!s:5s} compile={options[2]!s:5s}"
        if args.budget_s and time.perf_counter() - began > args.budget_s:
            report["skipped"].append(label)
            print(f"{label} skipped (budget)")
            continue
        try:
            run = measure(model, options, args, device)
        except Exception as e:  # an option a device or torch build lacks is a result too, not the end of the run
            run = {"model": model, "bf16": options[0], "channels_last": options[1], "compile": options[2],
                   "error": " ".join(str(e).split())[:300]}  # fmt: skip
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        report["runs"].append(run)
        print(f"{label} " + (f"{run['images_per_s']:9.1f} img/s" if "error" not in run else f"error: {run['error']}"))
        write_result(out, report)  # after every set: a run cut short keeps what it measured


if __name__ == "__main__":
    main()
