"""Training throughput: our loop against the course's sample loop, same model, same machine, same process.

Usage:
    python -m bench.speed.train_throughput [--zip ../shared/data/anime-faces-5k.zip] [--steps 15] [--repeats 2]
        [--device cpu] [--json bench/results/train_throughput_cpu.json] [--set train.reuse_fake=false ...]

Both train the course's DCGAN at 64x64, batch 64, BCE, Adam. The course loop (bench/course/dcgan.py) decodes and
resizes the JPEG folder every step in a DataLoader with 2 workers and draws a fresh G(z) for its G step; ours
(pipeline.train.loop.train_gan with params.yaml's train section) draws batches by index from a uint8 array made once
from the same JPEGs, reuses the critic step's fake batch and keeps an EMA of G. images/s counts real images
consumed per second, over the steps after the first `--warmup`; the loops alternate `--repeats` times and the
medians are compared. Prints each run, the medians and the ratio.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.common import REPO, RESULTS, SHARED_ZIP, StepClock, require, write_result
from bench.course.dcgan import course_loop
from pipeline.core.config import load_params
from pipeline.core.distributed import DistInfo
from pipeline.train.loop import TrainPaths, train_gan


def extract_faces(zip_path: Path, into: Path) -> Path:
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(into)
    folders = [p.parent for p in into.rglob("*.jpg")]
    return max(set(folders), key=folders.count)


def faces_array(folder: Path, size: int = 64) -> np.ndarray:
    files = sorted(folder.glob("*.jpg"), key=lambda p: int(p.stem) if p.stem.isdigit() else p.stem)
    return np.stack(
        [np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.Resampling.LANCZOS)) for f in files]
    )


def our_loop(faces: np.ndarray, steps: int, warmup: int, device: str, overrides: list[str], out: Path) -> dict:
    params = load_params(
        REPO / "params.yaml",
        ["data.image_size=64", "train.batch_size=64", "train.epochs=100", f"train.max_steps={steps + warmup}",
         f"train.checkpoint_every={steps + warmup}", "train.log_every=1", "train.on_mismatch=restart", *overrides],
    )  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)  # a finished checkpoint there would make the run a no-op
    clock = StepClock()
    dist_info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device(device))
    summary = train_gan(
        faces, params.train, TrainPaths(out / "checkpoint.pt", out / "generator.pt"), dist_info,
        make_log=lambda start: clock,
    )  # fmt: skip
    seconds = clock.times[steps + warmup] - clock.times[warmup]
    per_step = params.train.batch_size * params.train.n_critic
    return {"images_per_s": steps * per_step / seconds, "steps": steps, "seconds": seconds,
            "loss_d": summary["loss_d"], "loss_g": summary["loss_g"]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zip", type=Path, default=SHARED_ZIP)
    ap.add_argument("--steps", type=int, default=15, help="timed steps per loop (batch 64)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs of each loop; medians are reported")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", type=Path, help="where the figures go (default: results/train_throughput_<device>.json)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="param override for our loop")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = extract_faces(require(args.zip), Path(tmp) / "raw")
        faces = faces_array(folder)
        course_rates, our_rates = [], []
        for _ in range(args.repeats):  # alternated, so a load change on a shared machine hits both alike
            course = course_loop(str(folder), args.steps, batch_size=64, warmup=args.warmup, device=args.device)
            ours = our_loop(faces, args.steps, args.warmup, args.device, args.overrides, Path(tmp) / "models")
            course_rates.append(course["images_per_s"])
            our_rates.append(ours["images_per_s"])
            print(f"course {course_rates[-1]:.1f} images/s, ours {our_rates[-1]:.1f} images/s", flush=True)
    course = {"images_per_s": float(np.median(course_rates))}
    ours = {"images_per_s": float(np.median(our_rates))}
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    result = {
        "device": f"{args.device}: {device_name}",
        "torch_threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
        "faces": len(faces),
        "course_images_per_s": round(course["images_per_s"], 2),
        "ours_images_per_s": round(ours["images_per_s"], 2),
        "ratio": round(ours["images_per_s"] / course["images_per_s"], 3),
        "course_runs": [round(r, 2) for r in course_rates],
        "our_runs": [round(r, 2) for r in our_rates],
        "steps": args.steps,
        "overrides": args.overrides,
    }
    print(f"course loop (JPEG DataLoader, 2 workers): {course['images_per_s']:8.1f} images/s")
    print(f"our loop (uint8 array, reuse_fake, EMA):  {ours['images_per_s']:8.1f} images/s")
    print(f"ratio: {result['ratio']:.2f}x on {result['device']} ({result['torch_threads']} torch threads)")
    write_result(args.json or RESULTS / f"train_throughput_{args.device.split(':')[0]}.json", result)


if __name__ == "__main__":
    main()
