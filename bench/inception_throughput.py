"""Benchmark our Inception feature extractor against pytorch-fid's get_activations on the same images and weights.

Usage:
    .venv/bin/python bench/inception_throughput.py                       # 200 real faces, batch 50, CPU
    .venv/bin/python bench/inception_throughput.py --count 400 --batch-size 50 --weights path/to/pt_inception.pth
    .venv/bin/python bench/inception_throughput.py --threads 1 --with-eager   # one thread; ours without oneDNN too

Images: the first --count faces of the real 5k zip (../shared/data/anime-faces-5k.zip), resized to 64x64 as the
clean stage does, written as PNG (lossless) for pytorch-fid. Weights: --weights (pytorch-fid's file when you have
it) or the seeded, calibrated `untrained` network; both extractors get the identical state dict. Prints images/s of
each (ours timed on arrays, theirs through its own get_activations and DataLoader with num_workers=0; model build
excluded), the speed-up, the largest feature difference, and the FID between the two halves of the images from
each feature set. The two are timed batch by batch in alternation (ours on batch k, theirs on batch k, ...), so a
CPU shared with other work slows both alike; the per-batch median ratio is printed beside the total. Ours runs the
kernels the pipeline picks (on CPU: fused oneDNN convolution + ReLU); `--with-eager` also times our network on
PyTorch's eager modules (BatchNorm folded, channels_last: what ran before the oneDNN kernels, and what a GPU runs).
`--threads` sets torch's intra-op threads for all of them (default: torch's choice, one per core).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.metrics.fid import FeatureStats, frechet_distance  # noqa: E402
from pipeline.metrics.inception import _untrained_state, build_fid_inception, extract_features, load_backbone  # noqa: E402

# ../shared beside the main checkout, or beside the worktrees' folder
SHARED = next((p for p in (REPO.parent / "shared", REPO.parents[1] / "shared") if p.is_dir()), REPO.parent / "shared")
ZIP = SHARED / "data" / "anime-faces-5k.zip"


def real_faces(zip_path: Path, count: int, size: int) -> np.ndarray:
    with zipfile.ZipFile(zip_path) as z:
        names = sorted((n for n in z.namelist() if n.endswith(".jpg")), key=lambda n: int(Path(n).stem))[:count]
        out = []
        for n in names:
            with Image.open(io.BytesIO(z.read(n))) as im:
                out.append(np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)))
    return np.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--zip", type=Path, default=ZIP)
    ap.add_argument("--weights", default="untrained", help="a pytorch-fid state dict file, or untrained")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--with-eager", action="store_true", help="also time our network on eager PyTorch modules")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import pytorch_fid.inception as pfi
    from pytorch_fid.fid_score import get_activations

    faces = real_faces(args.zip, args.count, args.size)
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

        ours_backbone = load_backbone(str(weights), "", Path(tmp), 0, timeout_s=1, device="cpu")
        eager_backbone = load_backbone(str(weights), "", Path(tmp), 0, timeout_s=1, device="cpu", kernels="eager")
        net = build_fid_inception()
        net.load_state_dict(state)
        pfi.fid_inception_v3 = lambda: net  # theirs would download from GitHub; same network, same weights
        theirs_model = pfi.InceptionV3([3]).eval()
        b = args.batch_size
        extract_features(ours_backbone, faces[:b], b)  # warm-up all (allocator, oneDNN primitives)
        get_activations(files[:b], theirs_model, b, 2048, "cpu", 0)
        if args.with_eager:
            extract_features(eager_backbone, faces[:b], b)
        ours_parts, theirs_parts, eager_parts, ours_t, theirs_t, eager_t = [], [], [], [], [], []
        for start in range(0, len(faces), b):
            t = time.perf_counter()
            ours_parts.append(extract_features(ours_backbone, faces[start : start + b], b))
            ours_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            theirs_parts.append(get_activations(files[start : start + b], theirs_model, b, 2048, "cpu", 0))
            theirs_t.append(time.perf_counter() - t)
            if args.with_eager:
                t = time.perf_counter()
                eager_parts.append(extract_features(eager_backbone, faces[start : start + b], b))
                eager_t.append(time.perf_counter() - t)
        ours, theirs = np.concatenate(ours_parts), np.concatenate(theirs_parts)
        ours_s, theirs_s = sum(ours_t), sum(theirs_t)
        median_ratio = float(np.median(np.array(theirs_t) / np.array(ours_t)))

    half = len(faces) // 2
    fid_ours = _fid(ours[:half], ours[half:])
    fid_theirs = _fid(theirs[:half], theirs[half:])
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"images: {len(faces)} real faces at {args.size}x{args.size} -> 299x299, batch {args.batch_size}, "
          f"weights: {args.weights}")  # fmt: skip
    print(f"ours:        {len(faces) / ours_s:7.2f} images/s  ({ours_s / len(faces) * 1000:.1f} ms/image), "
          f"path {ours_backbone.path()}")  # fmt: skip
    print(f"pytorch-fid: {len(faces) / theirs_s:7.2f} images/s  ({theirs_s / len(faces) * 1000:.1f} ms/image)")
    print(f"speed-up:    {theirs_s / ours_s:.2f}x in total, {median_ratio:.2f}x per-batch median")
    if args.with_eager:
        eager, eager_s = np.concatenate(eager_parts), sum(eager_t)
        eager_median = float(np.median(np.array(theirs_t) / np.array(eager_t)))
        print(f"ours, eager: {len(faces) / eager_s:7.2f} images/s  ({eager_s / len(faces) * 1000:.1f} ms/image), "
              f"{theirs_s / eager_s:.2f}x pytorch-fid in total, {eager_median:.2f}x per-batch median; "
              f"max |feature difference| to pytorch-fid {np.abs(eager - theirs).max():.3g}")  # fmt: skip
    diff = np.abs(ours - theirs).max()
    print(f"max |feature difference|: {diff:.3g} (features up to {np.abs(theirs).max():.3g})")
    print(f"FID half vs half: ours {fid_ours:.6f}, pytorch-fid features {fid_theirs:.6f}, "
          f"relative difference {abs(fid_ours - fid_theirs) / fid_theirs:.2e}")  # fmt: skip


def _fid(a: np.ndarray, b: np.ndarray) -> float:
    sa, sb = FeatureStats.of(a), FeatureStats.of(b)
    return frechet_distance(sa.mean, sa.cov, sb.mean, sb.cov)


if __name__ == "__main__":
    main()
