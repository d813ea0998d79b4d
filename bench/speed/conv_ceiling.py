"""The convolution ceiling of pytorch-fid's Inception on this CPU: each of its convolution shapes timed alone.

Usage:
    .venv/bin/python -m bench.speed.conv_ceiling            # every shape, every kernel, batches 8 16 50
    .venv/bin/python -m bench.speed.conv_ceiling --batches 16 50 --threads 1 --json ''   # print only

The network's convolutions (FID Inception at 299x299, in forward order; a shape used by several layers counts once
with its multiplicity and its share of the FLOPs) are each run alone, with a bias and no ReLU, on random inputs,
through every kernel this PyTorch has on CPU (bench/speed/conv_shapes.py: nchw, channels_last, onednn, mkldnn)
at each batch size. The best kernel and batch of each shape give its ceiling time per image; the FLOP-weighted
ceiling is total FLOPs / the sum of those times: what the network would reach if every convolution ran as fast as
it does alone and nothing else (pooling, concatenation, ReLU, resizing) cost anything. The process keeps freed
memory (pipeline.core.heap) as the stage processes do, unless --default-heap. The table goes to
bench/results/conv_ceiling.json (--json).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bench.common import RESULTS, write_result
from bench.speed.conv_shapes import fid_inception_shapes, print_table, search
from pipeline.core.heap import keep_freed_memory


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 16, 50])
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--default-heap", action="store_true", help="glibc's default heap (freed memory unmapped)")
    ap.add_argument("--json", type=Path, default=RESULTS / "conv_ceiling.json", help="the table's file ('': none)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.default_heap:
        keep_freed_memory()
    shapes = fid_inception_shapes()
    best = search(shapes, args.batches)
    lines: list[str] = []
    seconds = print_table(shapes, best, args.batches, out=lambda line: (print(line), lines.append(line)))
    if str(args.json) not in ("", "."):
        rows = [{"shape": str(shape), "layers": n, "gflop": round(shape.flops / 1e9, 4), "best_kernel": b.kernel,
                 "best_batch": b.batch, "gflop_per_s": {f"{k} b{bs}": round(shape.flops / s / 1e9, 1)
                                                         for (k, bs), s in b.table.items()}}
                for (shape, n), b in zip(shapes, best, strict=True)]  # fmt: skip
        write_result(args.json, {"threads": torch.get_num_threads(), "batches": args.batches,
                                 "ceiling_images_per_s": round(1 / seconds, 2), "shapes": rows, "table": lines})


if __name__ == "__main__":
    main()
