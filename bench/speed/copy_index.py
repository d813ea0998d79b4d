"""The copy check alone, as the training set grows to the course's size: what a scored image costs through the copy
index's range search (what evaluate runs) against the full nearest-face scan (what evaluate ran before, linear in
the faces), in the same run on the same faces and images (issue 18).

Usage:
    .venv/bin/python -m bench.speed.copy_index                             # 4,500 / 18,000 / 64,183 faces
    .venv/bin/python -m bench.speed.copy_index --sizes 4500 20000 --calibration 200

Faces: bench/course/faces.py's 71,314 variants of the 5k zip (cached, never committed), keeping only the variants of
real faces 0-4,499 (64,183 of them), so that real faces 4,500-4,999 are new to every index: the first --sizes of
those. Images: 100 of those new real faces (what a good generator draws: close to the data, copying nothing),
50 edited copies of training faces (moved by a pixel, JPEG q75: must be flagged), 50 drawn by a course DCGAN with
random weights (far from everything). For each size: the index's build and calibration (once per clean data, in
the copy_index stage), the k-d tree (built by evaluate's first query), then `CopyIndex.within(images, near)`
(near = max(threshold, novel quantile), as evaluate asks) and `CopyIndex.nearest(images)` (every image's nearest
face), timed; both must flag the same images and give the same nearest face wherever it lies within `near`. Prints
milliseconds per image, the faces each query touched, and the load average; writes them to
bench/results/copy_index.json (--json; bench/results/copy_index.txt holds the run before).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, load_average, write_result
from bench.course.faces import COURSE_COUNT, course_faces

KNOWN = 4500  # real faces 0..KNOWN-1 (all their variants) are training faces; the rest are new


def query_images(faces: np.ndarray, new_faces: np.ndarray) -> tuple[np.ndarray, list[int]]:
    import torch

    from pipeline.metrics.copies import edit
    from pipeline.train.families.dcgan import Generator
    from pipeline.train.sampling import generate, jpeg_roundtrip

    torch.manual_seed(0)
    drawn = jpeg_roundtrip(generate(Generator(100, 64, 64).eval(), 0, 0, 50, 50, torch.device("cpu")), 75)
    picks = sorted(np.random.default_rng(0).choice(KNOWN, 50, replace=False).tolist())  # variant 0: in every index
    edited = np.stack([edit(np.asarray(faces[p]), 1, 0, 75) for p in picks])
    return np.concatenate([new_faces, edited, drawn]), picks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4500, 18000, 64183])
    ap.add_argument("--calibration", type=int, default=1000, help="eval.copies.calibration_count")
    ap.add_argument("--json", type=Path, default=RESULTS / "copy_index.json", help="where the table goes")
    args = ap.parse_args()

    import torch

    from pipeline.metrics.copies import CopyCheck
    from pipeline.metrics.copy_index import CopyIndex, QueryStats

    course = np.load(course_faces(COURSE_COUNT), mmap_mode="r")
    known = np.flatnonzero(np.arange(len(course)) % 5000 < KNOWN)  # every variant of real faces 0..KNOWN-1
    new_faces = np.asarray(course[KNOWN : KNOWN + 100])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; load {load_average()}")
    header = (f"{'faces':>7} {'build s':>8} {'calib s':>8} {'tree s':>6} {'threshold':>9} {'near':>7} | "
              f"{'within ms/img':>13} {'touched':>8} {'exact':>6} | {'nearest ms/img':>14} {'touched':>8} "
              f"{'exact':>6} | {'ratio':>6} same")  # fmt: skip
    print(header)
    rows = []
    for size in args.sizes:
        faces = np.ascontiguousarray(course[known[:size]])
        images, picks = query_images(faces, new_faces)
        t = time.perf_counter()
        index = CopyIndex.build(faces, seed=0)
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        cal = CopyCheck(faces, index=index).calibrate(args.calibration, 0.01, 0, 75)
        calib_s = time.perf_counter() - t
        near = cal.near()
        t = time.perf_counter()
        index.within(images[:1], near)  # the first query builds the k-d tree: once per evaluate, timed apart
        tree_s = time.perf_counter() - t
        runs = {}
        for name, args_ in (("within", (images, near)), ("nearest", (images,))):
            index.stats = QueryStats()
            t = time.perf_counter()
            found = getattr(index, name)(*args_)
            runs[name] = (found, (time.perf_counter() - t) / len(images), index.stats.as_dict(len(faces)))
        (wi, wd), w_s, w_st = runs["within"]
        (ni, nd), n_s, n_st = runs["nearest"]
        inside = nd <= near
        same = (
            np.array_equal(wd < cal.threshold, nd < cal.threshold)
            and np.array_equal(wi[inside], ni[inside]) and (wi[~inside] == -1).all()
            and wi[100:150].tolist() == picks  # every edited copy: its original (faces[p] is real face p, variant 0)
        )  # fmt: skip
        touched_w, touched_n = w_st["tree_per_query"], n_st["scanned_per_query"]
        print(f"{size:>7,} {build_s:>8.1f} {calib_s:>8.1f} {tree_s:>6.2f} {cal.threshold:>9.4f} {near:>7.4f} | "
              f"{1e3 * w_s:>13.2f} {touched_w:>8.1f} {w_st['exact_per_query']:>6.1f} | "
              f"{1e3 * n_s:>14.2f} {touched_n:>8.0f} {n_st['exact_per_query']:>6.1f} | "
              f"{n_s / w_s:>6.1f} {same}")  # fmt: skip
        flagged = int((wd < cal.threshold).sum())
        print(f"{'':>7} flagged {flagged} of {len(images)} (50 edited copies); within `near`: "
              f"{int(np.isfinite(wd).sum())}; load {load_average()}")  # fmt: skip
        rows.append({"faces": size, "build_s": build_s, "calibrate_s": calib_s, "tree_s": tree_s,
                     "threshold": cal.threshold, "near": near, "within_ms_per_image": 1e3 * w_s,
                     "within_touched": touched_w, "nearest_ms_per_image": 1e3 * n_s, "nearest_touched": touched_n,
                     "same": bool(same), "flagged": flagged, "images": len(images)})  # fmt: skip
    write_result(args.json, {"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows})


if __name__ == "__main__":
    main()
