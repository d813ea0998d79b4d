"""What the sampling knobs cost: time per image with truncation and with the critic's choice, against no knob.

    python -m bench.speed.sample_knobs [--tiny-count 1000] [--course-count 200] [--rounds 2] [--json PATH]

Two generators, each drawn with no knob, sample.truncation 0.7, sample.rejection top_k (k 4) and drs (k 4), through
pipeline.train.rejection.draw_images (float64, the sample stage's path; batch 250 candidate images per pass):
  tiny    a 16 px DCGAN (8 features) trained 40 steps on cartoon faces here, with its critic from the checkpoint,
  course  the course's 64 px DCGAN (z 100, 64 features) and critic, untrained: the time does not depend on weights.
Rounds alternate the settings; the best of each is printed with the load average (the machine is shared), and the
figures go to bench/results/sample_knobs.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import RESULTS, write_result
from pipeline.core.config import load_params
from pipeline.core.distributed import init_distributed
from pipeline.core.heap import keep_freed_memory
from pipeline.data.cartoon import cartoon_faces
from pipeline.train.critic_file import TrainedCritic, load_critic
from pipeline.train.families.dcgan import Critic, Generator
from pipeline.train.generator_file import load_generator
from pipeline.train.loop import TrainPaths, train_gan
from pipeline.train.rejection import SamplingKnobs, draw_images

REPO = Path(__file__).resolve().parents[2]
SETTINGS = {
    "no knob": SamplingKnobs(),
    "truncation 0.7": SamplingKnobs(truncation=0.7),
    "top_k k=4": SamplingKnobs(rejection="top_k", rejection_k=4),
    "drs k=4": SamplingKnobs(rejection="drs", rejection_k=4),
}
TINY = ["data.image_size=16", "train.dcgan.g_features=8", "train.dcgan.d_features=8", "train.batch_size=8",
        "train.grid_size=4", "train.max_steps=40", "train.epochs=100", "train.ema=0.0",
        "train.log_every=10"]  # fmt: skip


def tiny_nets(root: Path) -> tuple[torch.nn.Module, TrainedCritic]:
    params = load_params(REPO / "params.yaml", TINY)
    paths = TrainPaths(checkpoint=root / "checkpoint.pt", generator=root / "generator.pt")
    train_gan(cartoon_faces(count=64, size=16, seed=0), params.train, paths, init_distributed())
    return load_generator(paths.generator), load_critic(paths.checkpoint, params.train, 16)


def course_nets() -> tuple[torch.nn.Module, TrainedCritic]:
    torch.manual_seed(0)
    g = Generator(z_dim=100, g_features=64, image_size=64).eval()
    return g, TrainedCritic(Critic(d_features=64, image_size=64).eval(), 0, "gan")


def time_settings(g: torch.nn.Module, critic: TrainedCritic, count: int, rounds: int) -> dict[str, float]:
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, knobs in SETTINGS.items():
            start = time.perf_counter()
            draw_images(g, critic, knobs, seed=0, draw=0, count=count, batch_size=250)
            best[name] = min(best.get(name, np.inf), (time.perf_counter() - start) / count)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny-count", type=int, default=1000)
    ap.add_argument("--course-count", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path, default=RESULTS / "sample_knobs.json", help="where the figures go")
    args = ap.parse_args()
    keep_freed_memory()
    print(f"{os.cpu_count()} cpus, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        tiny = tiny_nets(Path(tmp))
    for name, (g, critic), count in (("tiny 16 px", tiny, args.tiny_count),
                                     ("course 64 px", course_nets(), args.course_count)):  # fmt: skip
        best = time_settings(g, critic, count, args.rounds)
        print(f"{name}, {count} images:")
        for setting, seconds in best.items():
            print(f"  {setting:16s} {seconds * 1e3:8.3f} ms/image  {seconds / best['no knob']:5.2f}x")
        figures[name] = {"count": count, "ms_per_image": {k: v * 1e3 for k, v in best.items()}}
    print(f"load {os.getloadavg()[0]:.2f}")
    write_result(args.json, {"threads": torch.get_num_threads(), "rounds": args.rounds, **figures})


if __name__ == "__main__":
    main()
