"""Plain MTCNN against the trained `anime` detector on the detector stage's held-out sets.

Usage:
    .venv/bin/python -m bench.metrics.detector_table --faces data/clean/faces.npy --detector models/detector
    .venv/bin/python -m bench.metrics.detector_table --count 500 --threads 1          # MTCNN on 500 faces only

Rebuilds exactly the held-out evaluation sets the detector stage scored (its holdout.npy and seed: real faces,
jittered and mildly blurred faces, one negative of each kind per face), rounds them to uint8 48x48 images, and
prints for each detector the share of each set in which it finds a face: recall on the face sets, false-positive
rate on the negative kinds. MTCNN runs as evaluate runs it (params.yaml's eval.afd: default thresholds, images
upscaled, a face counts at probability >= min_face_prob). --count limits the held-out faces used (MTCNN is slow).
The table goes to bench/results/detector_table.json (--json).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import REPO, RESULTS, write_result
from pipeline.core.config import load_params
from pipeline.metrics.afd import get_detector
from pipeline.metrics.detector.model import load_detector_from
from pipeline.metrics.detector.training import evaluation_sets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=Path, default=Path("data/clean/faces.npy"))
    ap.add_argument("--detector", type=Path, default=Path("models/detector"))
    ap.add_argument("--count", type=int, default=0, help="held-out faces to use (0: all)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--json", type=Path, default=RESULTS / "detector_table.json", help="where the table goes")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    faces = np.load(args.faces, mmap_mode="r")
    anime = load_detector_from(args.detector)
    holdout = np.load(args.detector / "holdout.npy")
    if args.count:
        holdout = holdout[: args.count]
    detectors = {"anime": anime, "mtcnn": get_detector("mtcnn", load_params(REPO / "params.yaml"))}
    found: dict[str, dict[str, list[np.ndarray]]] = {name: {} for name in detectors}
    seconds = dict.fromkeys(detectors, 0.0)
    for made in evaluation_sets(faces, holdout, anime.meta["seed"] + 1):  # the stage's held-out seed
        for set_name, images in made.items():
            batch = images.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
            for name, detector in detectors.items():
                t = time.perf_counter()
                found[name].setdefault(set_name, []).append(detector.detect(batch))
                seconds[name] += time.perf_counter() - t
    table = {
        name: {set_name: float(np.concatenate(parts).mean()) for set_name, parts in sets.items()}
        for name, sets in found.items()
    }
    columns = list(next(iter(table.values())))
    print(f"held-out faces: {len(holdout)}; recall on faces/jittered/mild_blur, false-positive rate on the rest")
    print(f"{'detector':10s}" + "".join(f"{c:>10s}" for c in columns) + f"{'seconds':>10s}")
    for name, row in table.items():
        print(f"{name:10s}" + "".join(f"{row[c]:10.3f}" for c in columns) + f"{seconds[name]:10.1f}")
    write_result(args.json, {"held_out_faces": len(holdout), "table": table, "seconds": seconds,
                             "anime": anime.describe(), "mtcnn": detectors["mtcnn"].describe()})


if __name__ == "__main__":
    main()
