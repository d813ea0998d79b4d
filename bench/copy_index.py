"""The copy check alone at the course's size: building the index, the calibration, and the cost per scored image,
against a baseline ref's copy check on the same images (issue 18).

Usage:
    .venv/bin/python bench/copy_index.py                          # 71,314 faces, 200 images, baseline main
    .venv/bin/python bench/copy_index.py --faces 20000 --images 100 --calibration 200 --baseline none

Faces: bench/course_set.py's variants of the 5k zip (cached, never committed). Images: half drawn by a course DCGAN
with random weights (JPEG q75, as the sample stage writes them), half edited copies of training faces (moved by a
pixel, JPEG q75). Each side runs in a fresh child with its own code (the baseline exported by `git archive`):
this checkout builds pipeline.metrics.copy_index.CopyIndex (timed) and answers CopyCheck.nearest through it; the
baseline's CopyCheck.nearest is whatever that ref does. Prints seconds per image, the index's work per query
(faces compared exactly, faces bounded, share of the faces touched), whether both sides flag the same images at
the calibrated threshold, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from course_set import course_faces  # noqa: E402
from evaluate_split import export, load  # noqa: E402

CHILD = """
import json, sys, time
import numpy as np
from pipeline.metrics.copies import CopyCheck
faces = np.load(FACES, mmap_mode="r")
images = np.load(IMAGES)
check = CopyCheck(faces)
out = {}
if hasattr(check, "copy_index"):
    t = time.perf_counter(); index = check.copy_index(); out["build_s"] = time.perf_counter() - t
t = time.perf_counter()
cal = check.calibrate(count=CAL, quantile=0.01, seed=0, jpeg_quality=75)
out["calibrate_s"] = time.perf_counter() - t
out["threshold"] = cal.threshold
if hasattr(check, "copy_index"):
    index.stats = type(index.stats)()
t = time.perf_counter()
idx, dist = check.nearest(images)
out["query_s"] = time.perf_counter() - t
if hasattr(check, "copy_index"):
    out["stats"] = index.stats.as_dict(len(faces))
out["index"] = idx.tolist(); out["distance"] = dist.tolist()
print("RESULT " + json.dumps(out))
"""


def child(code: Path, faces: Path, images: Path, calibration: int) -> dict:
    src = CHILD.replace("FACES", repr(str(faces))).replace("IMAGES", repr(str(images))).replace("CAL", str(calibration))
    proc = subprocess.run([sys.executable, "-c", src], cwd=code, env={**os.environ, "PYTHONPATH": str(code)},
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        sys.exit(f"child ({code}) failed:\n{proc.stderr[-3000:]}")
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("RESULT ")][-1][7:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=71314)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--calibration", type=int, default=1000, help="eval.copies.calibration_count")
    ap.add_argument("--baseline", default="main", help="git ref, or none")
    args = ap.parse_args()

    import torch

    from pipeline.metrics.copies import edit
    from pipeline.train.families.dcgan import Generator
    from pipeline.train.sampling import generate, jpeg_roundtrip

    faces_path = course_faces(args.faces)
    faces = np.load(faces_path, mmap_mode="r")
    torch.manual_seed(0)
    drawn = jpeg_roundtrip(generate(Generator(100, 64, 64).eval(), 0, 0, args.images // 2, 50, torch.device("cpu")), 75)
    picks = np.random.default_rng(0).choice(len(faces), args.images - len(drawn), replace=False)
    edited = np.stack([edit(np.asarray(faces[p]), 1, 0, 75) for p in picks])
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images.npy"
        np.save(images, np.concatenate([drawn, edited]))
        print(f"{args.faces:,} faces, {args.images} images ({len(drawn)} drawn, {len(edited)} edited copies), "
              f"calibration {args.calibration}; load {load()}")  # fmt: skip
        rows = {"this checkout": child(REPO, faces_path, images, args.calibration)}
        print(f"  (load {load()})")
        if args.baseline != "none":
            rows[args.baseline] = child(export(args.baseline, Path(tmp)), faces_path, images, args.calibration)
            print(f"  (load {load()})")
    for name, r in rows.items():
        extra = f"build {r['build_s']:.1f} s, " if "build_s" in r else ""
        print(f"{name:>14}: {extra}calibration {r['calibrate_s']:.1f} s, {1000 * r['query_s'] / args.images:.1f} ms "
              f"per image, threshold {r['threshold']:.4f}, flagged {sum(d < r['threshold'] for d in r['distance'])}")
        if "stats" in r:
            st = r["stats"]
            print(f"{'':>14}  per query: {st['exact_per_query']:.1f} faces compared exactly, "
                  f"{st['bounded_per_query']:.0f} with the full bound, {st['prefix_per_query']:.0f} with the "
                  f"{24}-component bound")
    if len(rows) == 2:
        a, b = rows.values()
        same_i = np.mean(np.asarray(a["index"]) == np.asarray(b["index"]))
        closer = np.mean(np.asarray(a["distance"]) <= np.asarray(b["distance"]) + 1e-12)
        print(f"same nearest face {same_i:.3f}; this checkout's distance <= the baseline's for {closer:.3f} "
              "(the index is exact; a heuristic can only find a farther face)")


if __name__ == "__main__":
    main()
