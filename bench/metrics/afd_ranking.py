"""Does AFD rank generators? AFD of an untrained, a briefly trained and a longer-trained generator (same seed),
with the `anime` detector and with plain MTCNN, plus both detectors' rate on held-out real faces.

Usage:
    .venv/bin/python -m bench.metrics.afd_ranking                          # real faces from ../shared/data
    .venv/bin/python -m bench.metrics.afd_ranking --zip faces.zip --brief-steps 100 --long-steps 1500 --count 500
    .venv/bin/python -m bench.metrics.afd_ranking --detector models/detector   # reuse a trained detector

Runs the real stages in a work folder (default /tmp/afd_ranking): faces from the zip resized (Lanczos, as clean
does) to 64x64 for the `detector` stage (params.yaml's detector section) and to --image-size for the `train`
stage (32 by default: a 64 px DCGAN needs far more CPU steps before faces appear), with a smaller
DCGAN (--g-features/--d-features, EMA off so a short run is not averaged away), stopped at --brief-steps, and
run again to --long-steps.
Each is a fresh train run from the same seed; the untrained generator is the one train builds at step 0.
Samples: the first --count images of draw 0, as the sample stage draws them. Prints a table and writes it to
bench/results/afd_ranking.json (--json). --threads 1 is much faster than 2 on a CPU other jobs share.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.common import REPO, RESULTS, SHARED_ZIP, require, write_result, zip_faces
from pipeline.core.config import load_params
from pipeline.core.seeding import INIT, derive_seed, seed_everything
from pipeline.metrics.afd import get_detector
from pipeline.metrics.detector.model import load_detector_from
from pipeline.metrics.scores.afd import detection_rate
from pipeline.train.families.dcgan import Generator
from pipeline.train.generator_file import load_generator
from pipeline.train.sampling import generate
from stages import detector as detector_stage
from stages import train as train_stage


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zip", type=Path, default=SHARED_ZIP)
    ap.add_argument("--work", type=Path, default=Path("/tmp/afd_ranking"))
    ap.add_argument("--detector", type=Path, help="a trained detector folder (default: train one in --work)")
    ap.add_argument("--brief-steps", type=int, default=100)
    ap.add_argument("--long-steps", type=int, default=1500)
    ap.add_argument("--image-size", type=int, default=32, help="GAN image size: 16, 32 or 64 (the course's)")
    ap.add_argument("--g-features", type=int, default=32)
    ap.add_argument("--d-features", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-4, help="lr_g and lr_d (DCGAN paper's; the course's is 1e-4)")
    ap.add_argument("--count", type=int, default=500, help="samples per generator")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--json", type=Path, default=RESULTS / "afd_ranking.json", help="where the table goes")
    args = ap.parse_args()
    args.json = args.json.resolve()  # the run changes into --work (outside git, for DVCLive)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    work, size = args.work, args.image_size
    faces = {}
    for side in sorted({64, size}):  # the detector trains on 64 px faces, the GAN on --image-size ones
        path = work / f"clean{side}" / "faces.npy"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, zip_faces(require(args.zip), side))
        faces[side] = np.load(path)
    params = load_params(
        REPO / "params.yaml",
        [f"paths.{k}={work / k}" for k in ("models", "metrics", "plots", "detector")]
        + [
            f"paths.clean={work / 'clean64'}",
            f"data.image_size={size}",
            f"train.dcgan.g_features={args.g_features}",
            f"train.dcgan.d_features={args.d_features}",
            f"train.batch_size={args.batch_size}",
            f"train.lr_g={args.lr}",
            f"train.lr_d={args.lr}",
            "train.ema=0.0",
            "train.epochs=1000",
        ],
    )
    timings: dict[str, float] = {}
    detector_dir = args.detector or Path(params.paths.detector)
    if args.detector is None and not (detector_dir / "detector.pt").is_file():
        t = time.perf_counter()
        detector_stage.execute(params)
        timings["detector_stage_s"] = round(time.perf_counter() - t, 1)
    anime = load_detector_from(detector_dir)
    mtcnn = get_detector("mtcnn", params)
    holdout_file = detector_dir / "holdout.npy"
    real = faces[size][np.load(holdout_file)] if holdout_file.is_file() else faces[size]
    real = real[: args.count]

    tp = params.train
    seed_everything(derive_seed(tp.seed, INIT))  # what train_gan does before building G: its step-0 weights
    generators = {"untrained": Generator(tp.z_dim, tp.dcgan.g_features, size).eval()}
    gan_paths = params.paths.model_copy(update={"clean": str(work / f"clean{size}")})
    train_params = params.model_copy(update={"paths": gan_paths})
    models = Path(params.paths.models)
    os.chdir(work)  # outside any git repo: DVCLive would otherwise `dvc init` the repo it runs in
    for name, steps in (("brief", args.brief_steps), ("longer", args.long_steps)):
        shutil.rmtree(models, ignore_errors=True)  # each a fresh run from the same seed
        t = time.perf_counter()
        train_stage.execute(train_params.model_copy(update={"train": tp.model_copy(update={"max_steps": steps})}))
        timings[f"train_to_{steps}_steps_s"] = round(time.perf_counter() - t, 1)
        generators[f"{name} ({steps} steps)"] = load_generator(models / "generator.pt")

    rows = {f"real held-out faces ({size} px)": real}
    rows.update({name: generate(g, seed=0, draw=0, count=args.count, batch_size=250) for name, g in generators.items()})
    table = {
        name: {"anime": detection_rate(anime, images), "mtcnn": detection_rate(mtcnn, images)}
        for name, images in rows.items()
    }
    for name, images in rows.items():
        Image.fromarray(np.concatenate(list(images[:8]), axis=1)).save(work / f"{name.split()[0]}.png")
    print(f"\n{'images':28s} {'AFD anime':>10s} {'AFD mtcnn':>10s}")
    for name, r in table.items():
        print(f"{name:28s} {r['anime']:10.3f} {r['mtcnn']:10.3f}")
    print(json.dumps(timings))
    result = {
        "afd": table,
        "timings": timings,
        "anime": anime.describe(),
        "mtcnn": mtcnn.describe(),
        "count": args.count,
        "torch_threads": torch.get_num_threads(),
    }
    write_result(args.json, result)


if __name__ == "__main__":
    main()
