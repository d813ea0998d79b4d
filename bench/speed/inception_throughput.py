"""Benchmark our Inception feature extractor against pytorch-fid's and against this CPU's convolution ceiling.

Usage:
    .venv/bin/python -m bench.speed.inception_throughput                  # 200 real faces, batch 50, CPU
    .venv/bin/python -m bench.speed.inception_throughput --count 400 --batch-size 50 --weights pt_inception.pth
    .venv/bin/python -m bench.speed.inception_throughput --threads 1 --with-eager   # one thread; ours eager too
    .venv/bin/python -m bench.speed.inception_throughput --ceiling-batches    # no ceiling (faster)

Images: the first --count faces of the real 5k zip (../shared/data/anime-faces-5k.zip), resized to 64x64 as the
clean stage does, written as PNG (lossless) for pytorch-fid. Weights: --weights (pytorch-fid's file when you have
it) or the seeded, calibrated `untrained` network; all extractors get the identical state dict.

First the convolution ceiling (bench/speed/conv_shapes.py): every distinct convolution shape of the network timed alone
with each kernel (NCHW, channels_last, oneDNN pointwise, oneDNN tensors) at each of --ceiling-batches; the table
gives each shape's share of the FLOPs and the GFLOP/s of each kernel. Then the timed rounds, one per batch of
images: ours (the kernels the pipeline picks: on CPU `onednn-blocks`), ours with the per-layer oneDNN kernels (what
ran before), `--with-eager` ours on PyTorch's eager modules, pytorch-fid's own get_activations (its DataLoader
with num_workers=0, PNG decoding included), and every convolution shape once more in its best kernel and batch
(the ceiling's time per image, now). Interleaving them batch by batch lets a shared CPU's load hit all alike.
Prints, and writes to --json (bench/results/inception_throughput.json): images/s, GFLOP/s of convolutions, the
share of the ceiling (total and per-batch median), the speed-up on pytorch-fid, the largest feature difference to
pytorch-fid and the FID between the two halves of the images from each feature set; with the load average before
and after, and the printed report as "report" (bench/results/inception_throughput.md holds the runs made before).
`--threads` sets torch's intra-op threads for all of them (default: torch's choice, one per core). The process
keeps freed memory (pipeline.core.heap, as every stage process does) unless --default-heap: that applies to all of
them alike, pytorch-fid and the ceiling included (pytorch-fid's own CLI runs on glibc's default heap).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.common import RESULTS, SHARED_ZIP, require, write_result, zip_faces
from bench.speed.conv_shapes import Ceiling, conv_shapes, print_table, search
from pipeline.core.heap import keep_freed_memory
from pipeline.metrics.fid import FeatureStats, frechet_distance
from pipeline.metrics.inception import _untrained_state, build_fid_inception, extract_features, load_backbone


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--zip", type=Path, default=SHARED_ZIP)
    ap.add_argument("--weights", default="untrained", help="a pytorch-fid state dict file, or untrained")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--with-eager", action="store_true", help="also time our network on eager PyTorch modules")
    ap.add_argument("--default-heap", action="store_true", help="glibc's default heap (freed memory unmapped)")
    ap.add_argument("--ceiling-batches", type=int, nargs="*", default=[8, 16, 50],
                    help="batch sizes the convolution ceiling tries (none: skip the ceiling)")  # fmt: skip
    ap.add_argument("--json", type=Path, default=RESULTS / "inception_throughput.json",
                    help="where the figures are written (empty: nowhere)")  # fmt: skip
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    kept = False if args.default_heap else keep_freed_memory()

    import pytorch_fid.inception as pfi
    from pytorch_fid.fid_score import get_activations

    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    load_before = os.getloadavg()
    faces = zip_faces(require(args.zip), args.size, args.count)
    with tempfile.TemporaryDirectory() as tmp:
        if args.weights == "untrained":
            state = _untrained_state(0)
            weights = Path(tmp) / "untrained.pth"
            torch.save(state, weights)
        else:
            weights = Path(args.weights)
            state = torch.load(weights, map_location="cpu", weights_only=True)
        files = []
        for i, face in enumerate(faces):
            files.append(Path(tmp) / f"{i}.png")
            Image.fromarray(face).save(files[-1])

        net = build_fid_inception()
        net.load_state_dict(state)
        pfi.fid_inception_v3 = lambda: net  # theirs would download from GitHub; same network, same weights
        theirs_model = pfi.InceptionV3([3]).eval()
        b = args.batch_size
        ours_backbone = load_backbone(str(weights), "", Path(tmp), 0, timeout_s=1, device="cpu")
        extractors = {"ours": lambda x: extract_features(ours_backbone, x, b)}
        names = {"ours": f"ours ({ours_backbone.kernels})"}
        if ours_backbone.kernels != "onednn":  # what ran before the blocks were rewritten
            layers_backbone = load_backbone(str(weights), "", Path(tmp), 0, timeout_s=1, device="cpu", kernels="onednn")
            extractors["layers"] = lambda x: extract_features(layers_backbone, x, b)
            names["layers"] = "ours (onednn, per layer)"
        if args.with_eager:
            eager_backbone = load_backbone(str(weights), "", Path(tmp), 0, timeout_s=1, device="cpu", kernels="eager")
            extractors["eager"] = lambda x: extract_features(eager_backbone, x, b)
            names["eager"] = "ours (eager)"

        ceiling = None
        if args.ceiling_batches:
            shapes = conv_shapes(build_fid_inception())
            t0 = time.perf_counter()
            best = search(shapes, args.ceiling_batches)
            say(
                f"convolution ceiling: each of the {len(shapes)} distinct convolution shapes alone, GFLOP/s of each "
                f"kernel at its best batch of {args.ceiling_batches} (searched in {time.perf_counter() - t0:.0f} s)"
            )
            say("```")
            table: list[str] = []
            print_table(shapes, best, args.ceiling_batches, out=table.append)
            for line in table:
                say(line)
            say("```")
            ceiling = Ceiling(shapes, best)

        for extract in extractors.values():  # warm-up all (allocator, oneDNN primitives)
            extract(faces[:b])
        get_activations(files[:b], theirs_model, b, 2048, "cpu", 0)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in [*extractors, "theirs"]}
        times: dict[str, list[float]] = {k: [] for k in [*extractors, "theirs", "ceiling"]}
        for start in range(0, len(faces), b):  # one batch of each in turn: load changes hit all alike
            for key, extract in extractors.items():
                t = time.perf_counter()
                parts[key].append(extract(faces[start : start + b]))
                times[key].append((time.perf_counter() - t) / len(parts[key][-1]))
            t = time.perf_counter()
            parts["theirs"].append(get_activations(files[start : start + b], theirs_model, b, 2048, "cpu", 0))
            times["theirs"].append((time.perf_counter() - t) / len(parts["theirs"][-1]))
            if ceiling is not None:
                times["ceiling"].append(ceiling.round_seconds())
        features = {k: np.concatenate(v) for k, v in parts.items()}

    flops = sum(shape.flops * n for shape, n in conv_shapes(build_fid_inception()))
    load_after = os.getloadavg()
    say(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, heap {'keeps freed memory' if kept else 'glibc default'}, load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after (1 min; 5 min {load_after[1]:.1f})")  # fmt: skip
    say(f"images: {len(faces)} real faces at {args.size}x{args.size} -> 299x299, batch {b}, weights: {args.weights}; "
        f"{flops / 1e9:.2f} GFLOP of convolutions per image")  # fmt: skip
    say("")
    say("| what | images/s | conv GFLOP/s | of the ceiling (total; per-batch median) | pytorch-fid's time / its |")
    say("|---|---|---|---|---|")
    theirs_t = np.array(times["theirs"])
    rows: dict[str, dict] = {}
    for key in [*extractors, "theirs", "ceiling"]:
        if not times[key]:
            continue
        t = np.array(times[key])
        rate = 1 / t.mean()
        of_ceiling = "-"
        name = {**names, "theirs": "pytorch-fid", "ceiling": "convolution ceiling"}[key]
        rows[name] = {"images_per_s": round(rate, 2), "conv_gflop_per_s": round(rate * flops / 1e9, 1),
                      "speedup_on_pytorch_fid": round(theirs_t.mean() / t.mean(), 3),
                      "speedup_on_pytorch_fid_median": round(float(np.median(theirs_t / t)), 3)}  # fmt: skip
        if times["ceiling"] and key != "ceiling":
            c = np.array(times["ceiling"])
            of_ceiling = f"{c.mean() / t.mean():.1%}; {np.median(c / t):.1%}"
            rows[name] |= {"of_ceiling": round(float(c.mean() / t.mean()), 4),
                           "of_ceiling_median": round(float(np.median(c / t)), 4)}  # fmt: skip
        say(f"| {name} | {rate:.2f} | {rate * flops / 1e9:.1f} | {of_ceiling} | "
            f"{theirs_t.mean() / t.mean():.2f}x; {np.median(theirs_t / t):.2f}x |")  # fmt: skip
    say("")
    theirs = features["theirs"]
    half = len(faces) // 2
    fid_theirs = _fid(theirs[:half], theirs[half:])
    for key in extractors:
        f = features[key]
        fid = _fid(f[:half], f[half:])
        rows[names[key]] |= {"max_feature_difference": float(np.abs(f - theirs).max()), "fid_half_vs_half": fid,
                             "pytorch_fid_half_vs_half": fid_theirs}  # fmt: skip
        say(f"{names[key]}: max |feature difference| to pytorch-fid {np.abs(f - theirs).max():.3g} (features up to "
            f"{np.abs(theirs).max():.3g}); FID half vs half {fid:.6f} against {fid_theirs:.6f}, relative "
            f"difference {abs(fid - fid_theirs) / fid_theirs:.2e}")  # fmt: skip
    if str(args.json) not in ("", "."):  # Path("") is "."
        write_result(args.json, {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                                 "torch": torch.__version__, "threads": torch.get_num_threads(), "heap_kept": kept,
                                 "load_before_after": [load_before[0], load_after[0]], "images": len(faces),
                                 "batch": b, "weights": args.weights, "conv_gflop_per_image": round(flops / 1e9, 3),
                                 "rows": rows, "report": lines})  # fmt: skip


def _fid(a: np.ndarray, b: np.ndarray) -> float:
    sa, sb = FeatureStats.of(a), FeatureStats.of(b)
    return frechet_distance(sa.mean, sa.cov, sb.mean, sb.cov)


if __name__ == "__main__":
    main()
