"""Drawing the course DCGAN's images (sample's submission, evaluate's repeat draws): time per image, one run.

    python -m bench.speed.sample_draws [--count 500] [--batch-size 250] [--rounds 2] [--json PATH]

Times pipeline.train.sampling.generate (float64, for images that do not depend on batch size or device) with its
CPU transposed convolutions (Float64TransposedConv) and with torch's own float64 ConvTranspose2d, and the course
notebook's float32 forward (`G(z)` in eval mode) as the reference a student would otherwise run; rounds alternate,
the best of each is printed with the load average. The process keeps freed memory as the stage processes do
(pipeline.core.heap), for all three, unless --default-heap. The generator is the course's at 64 px (z 100, 64
features), untrained: the time does not depend on the weights. Whether both float64 paths give the same images is
checked too. The figures go to bench/results/sample_draws.json (bench/results/sample_draws.txt holds earlier runs).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

import pipeline.train.sampling as sampling
from bench.common import RESULTS, write_result
from pipeline.core.heap import keep_freed_memory
from pipeline.train.families.dcgan import Generator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--default-heap", action="store_true", help="glibc's default heap (freed memory unmapped)")
    ap.add_argument("--json", type=Path, default=RESULTS / "sample_draws.json", help="where the figures go")
    args = ap.parse_args()
    kept = False if args.default_heap else keep_freed_memory()
    torch.manual_seed(0)
    g = Generator(z_dim=100, g_features=64, image_size=64).eval()
    swap = sampling.swap_transposed_convs

    def ours() -> np.ndarray:
        return sampling.generate(g, seed=0, draw=1, count=args.count, batch_size=args.batch_size)

    def torch_layers() -> np.ndarray:
        sampling.swap_transposed_convs = lambda model: None  # generate() as it was: torch's float64 layers
        try:
            return sampling.generate(g, seed=0, draw=1, count=args.count, batch_size=args.batch_size)
        finally:
            sampling.swap_transposed_convs = swap

    def course_float32() -> None:
        with torch.no_grad():
            for start in range(0, args.count, args.batch_size):
                g(torch.randn(min(args.batch_size, args.count - start), 100))

    best: dict[str, float] = {}
    images = {}
    heap = "keeps freed memory" if kept else "glibc default"
    print(f"{os.cpu_count()} cpus, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.count} "
          f"images of 64x64, batch {args.batch_size}, heap {heap}; load {os.getloadavg()[0]:.2f}")  # fmt: skip
    for _ in range(args.rounds):
        for name, run in (("generate, Float64TransposedConv", ours), ("generate, torch float64 layers", torch_layers),
                          ("course notebook, float32", course_float32)):  # fmt: skip
            start = time.perf_counter()
            images[name] = run()
            best[name] = min(best.get(name, np.inf), (time.perf_counter() - start) / args.count)
    for name, seconds in best.items():
        print(f"  {name:34s} {seconds * 1e3:7.2f} ms/image")
    ratio = best["generate, torch float64 layers"] / best["generate, Float64TransposedConv"]
    same = np.array_equal(images["generate, Float64TransposedConv"], images["generate, torch float64 layers"])
    print(f"  speed-up over torch's float64 layers {ratio:.2f}x; same images: {same}; "
          f"float64 costs {best['generate, Float64TransposedConv'] / best['course notebook, float32']:.2f}x "
          f"the course's float32; load {os.getloadavg()[0]:.2f}")  # fmt: skip
    write_result(args.json, {"threads": torch.get_num_threads(), "count": args.count, "batch_size": args.batch_size,
                             "heap_kept": bool(kept), "ms_per_image": {k: v * 1e3 for k, v in best.items()},
                             "speedup_on_torch_float64": ratio, "same_images": bool(same)})  # fmt: skip


if __name__ == "__main__":
    main()
