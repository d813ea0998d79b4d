"""Training cost of the model race's models at 64 px: images/s on this machine and FLOPs per real image.

Usage:
    python -m bench.models.cost [--size 64] [--steps 6] [--warmup 2] [--models dcgan wgan-gp dcgan-rpgan-r1 r3gan-tiny]
        [--json bench/results/model_cost_cpu.json] [--speed-from EARLIER.json]

Each model is bench/models/setups.py's configuration (batch 64), as the race trains it, at --size on random faces
(speed does not depend on the pixels). FLOPs: torch.utils.flop_counter over reg_every whole training steps (so a
lazy R1/R2 step counts once per interval, as in training; its double backward included), divided by the real images
those steps consume (convolution gradients counted at their forward's cost: see bench/models/flop_count.py).
images/s: train_gan for --warmup + --steps steps on one torch thread, timed over the last --steps.
The machine is shared: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from bench.common import REPO, RESULTS, StepClock, write_result
from bench.models.flop_count import flops
from bench.models.setups import SETUPS, setup_overrides
from pipeline.core.config import load_params
from pipeline.core.distributed import DistInfo
from pipeline.train.families import Nets, family_for
from pipeline.train.loop import TrainPaths, train_gan


def flops_per_image(train, size: int) -> float:
    images_per_step = train.batch_size * train.n_critic
    family = family_for(train, size, images_per_step)
    torch.manual_seed(0)
    g, d = family.build()
    opt_g, opt_d = family.optimizers(g, d, fused=None)
    nets = Nets(g, d, opt_g, opt_d)
    gen = torch.Generator().manual_seed(0)

    def steps() -> None:
        for step in range(train.reg_every):
            for k in range(train.n_critic):
                real = torch.rand(train.batch_size, 3, size, size) * 2 - 1
                z = torch.randn(train.batch_size, train.z_dim)
                gamma = family.schedule(step).gamma
                fake, _, _ = family.critic_step(nets, real, z, gen, gamma, step * train.n_critic + k, True)
            family.generator_step(nets, fake, real, z)

    return flops(steps) / (images_per_step * train.reg_every)


def images_per_s(overrides: list[str], steps: int, warmup: int, size: int) -> float:
    params = load_params(REPO / "params.yaml", [*overrides, f"train.max_steps={steps + warmup}", "train.log_every=1",
                                                f"train.checkpoint_every={steps + warmup}"])  # fmt: skip
    faces = np.random.default_rng(0).integers(0, 256, (1024, size, size, 3), dtype=np.uint8)
    clock = StepClock()
    with tempfile.TemporaryDirectory() as tmp:
        paths = TrainPaths(Path(tmp) / "checkpoint.pt", Path(tmp) / "generator.pt")
        train_gan(faces, params.train, paths, DistInfo(0, 1, 0, torch.device("cpu")), make_log=lambda s: clock)
    per_step = params.train.batch_size * params.train.n_critic
    return steps * per_step / (clock.times[steps + warmup] - clock.times[warmup])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    ap.add_argument("--speed-from", type=Path, help="take images/s from this earlier JSON (count FLOPs only)")
    ap.add_argument("--json", type=Path, default=RESULTS / "model_cost_cpu.json")
    args = ap.parse_args()
    os.environ["ANIMEGAN_PROGRESS"] = "0"
    torch.set_num_threads(1)
    rows = {}
    load = os.getloadavg()
    for name in args.models:
        overrides = setup_overrides(name, args.size, 100_000)
        train = load_params(REPO / "params.yaml", overrides).train
        gflops = flops_per_image(train, args.size) / 1e9
        if args.speed_from:
            rate = json.loads(args.speed_from.read_text())["models"][name]["images_per_s"]
        else:
            rate = images_per_s(overrides, args.steps, args.warmup, args.size)
        rows[name] = {"gflops_per_real_image": round(gflops, 3), "images_per_s": round(rate, 2)}
        print(f"{name:16s} {gflops:8.3f} GFLOP per real image  {rate:7.2f} images/s", flush=True)
    after = os.getloadavg()
    print(f"{args.size} px, batch 64, one torch thread, {os.cpu_count()} cores; load average {load[0]:.1f} before, "
          f"{after[0]:.1f} after")  # fmt: skip
    if args.speed_from:  # the speeds, and so the load they were measured under, are the earlier run's
        load, after = json.loads(args.speed_from.read_text())["load_average"]
        load, after = (load,), (after,)
    write_result(args.json, {"size": args.size, "load_average": [load[0], after[0]], "models": rows})


if __name__ == "__main__":
    main()
