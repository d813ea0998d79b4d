"""Training images/s at 64 px for dcgan and the r3gan presets, with bf16, channels_last and compile on and off.

Usage:
    python bench/gpu.py                                  # a CUDA machine: JSON to bench/results/gpu-<device>.json
    python bench/gpu.py --json $OUT/gpu.json --budget-s 420 --models dcgan r3gan-tiny r3gan-small r3gan-paper
    python bench/gpu.py --full                           # all 8 on/off combinations instead of the 6 below
    python bench/gpu.py --quick                          # any machine (CPU here): dcgan and r3gan-tiny at 16 px,
                                                         # batch 2, one warm-up and one timed step per set

What it times: one plain training step built directly from the models (the training loop's model families were
being written in parallel when this was prepared), the same work per step as pipeline/train/loop.py's loop:
  dcgan        the course's networks and gan (BCE) loss, BatchNorm critic, Adam(0.5, 0.999); the G step reuses the
               critic step's fake batch;
  r3gan-<p>    pipeline/train/families/r3gan.py preset p, relativistic pairing loss, R1 and R2 every critic
               step (gamma 1; lazy regularisation would be cheaper), Adam(0, 0.99); the G step reuses the fake batch.
The penalties differentiate the plain critic twice in float32, eagerly (double backward through torch.compile
is unsupported or wrong, pytorch issues 91469 and 183603), as the loop does; bf16 autocast, channels_last and
torch.compile apply to the adversarial terms. No data loading, no EMA update (both small next to the step).
Option sets (bf16, channels_last, compile): none, bf16, channels_last, bf16+channels_last, compile, all three;
eager sets run first for every model, compiled ones after, so a run cut short by --budget-s keeps the basics.
Each set runs --warmup steps (compilation happens there), then --steps timed steps between CUDA synchronisations;
images/s counts real images per second. The JSON is rewritten after every set: device name, torch version,
batch size and, per set, images/s, ms per step and peak GPU memory. --quick compiles with the "eager" backend
(checks the code path, not the speed) and runs on CPU unless CUDA is there.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import re
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.train.families.dcgan import Critic, Generator  # noqa: E402
from pipeline.train.families.r3gan import R3Critic, R3Generator  # noqa: E402

MODELS = ("dcgan", "r3gan-tiny", "r3gan-small", "r3gan-paper")
EAGER_SETS = ((False, False, False), (True, False, False), (False, True, False), (True, True, False))
COMPILED_SETS = ((False, False, True), (True, True, True))


def build(model: str, image_size: int) -> tuple[nn.Module, nn.Module, int]:
    """G, D and z_dim of a model name: dcgan is the course's (64 features, z 100), r3gan-<preset> ours."""
    if model == "dcgan":
        return Generator(100, 64, image_size), Critic(64, image_size, norm="batch"), 100
    preset = model.removeprefix("r3gan-")
    return R3Generator(preset, image_size), R3Critic(preset, image_size), 64


def zero_centred_penalty(critic: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of |grad_x D(x)|^2 (R1 on reals, R2 on fakes), with a graph for the backward."""
    x = images.detach().float().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.square().sum(dim=(1, 2, 3)).mean()


class PlainStep:
    """One critic step and one generator step of `model`; call it with a real batch."""

    def __init__(self, model: str, image_size: int, device: torch.device, bf16: bool, channels_last: bool,
                 compile_backend: str | None, penalties: bool = True) -> None:  # fmt: skip
        self.r3gan, self.penalties = model.startswith("r3gan"), penalties
        g, d, self.z_dim = build(model, image_size)
        memory = torch.channels_last if channels_last else torch.contiguous_format
        self.g, self.d = g.to(device, memory_format=memory), d.to(device, memory_format=memory)
        self.memory, self.device = memory, device
        betas = (0.0, 0.99) if self.r3gan else (0.5, 0.999)
        fused = True if device.type == "cuda" else None
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=2e-4, betas=betas, fused=fused)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=2e-4, betas=betas, fused=fused)
        compiled = (lambda m: torch.compile(m, backend=compile_backend)) if compile_backend else (lambda m: m)
        self.g_run, self.d_run = compiled(self.g), compiled(self.d)
        self.bf16 = bf16

    def autocast(self) -> torch.autocast:
        return torch.autocast("cuda" if self.device.type == "cuda" else "cpu", dtype=torch.bfloat16, enabled=self.bf16)

    def __call__(self, real: torch.Tensor) -> None:
        real = real.contiguous(memory_format=self.memory)
        z = torch.randn(real.shape[0], self.z_dim, device=self.device)
        with self.autocast():
            fake = self.g_run(z)
            real_scores, fake_scores = self.d_run(real).float(), self.d_run(fake.detach()).float()
            if self.r3gan:
                loss_d = F.softplus(fake_scores - real_scores).mean()
            else:
                loss_d = (F.binary_cross_entropy_with_logits(real_scores, torch.ones_like(real_scores))
                          + F.binary_cross_entropy_with_logits(fake_scores, torch.zeros_like(fake_scores)))  # fmt: skip
        if self.r3gan and self.penalties:
            gamma = 1.0
            loss_d = loss_d + gamma / 2 * (zero_centred_penalty(self.d, real) + zero_centred_penalty(self.d, fake))
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        self.d.requires_grad_(False)
        with self.autocast():
            fake_scores = self.d_run(fake).float()
            if self.r3gan:
                loss_g = F.softplus(self.d_run(real).float() - fake_scores).mean()
            else:
                loss_g = F.binary_cross_entropy_with_logits(fake_scores, torch.ones_like(fake_scores))
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.d.requires_grad_(True)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model: str, options: tuple[bool, bool, bool], args: argparse.Namespace, device: torch.device) -> dict:
    bf16, channels_last, use_compile = options
    backend = ("eager" if args.quick else "inductor") if use_compile else None
    torch.manual_seed(0)
    step = PlainStep(model, args.image_size, device, bf16, channels_last, backend)
    real = torch.rand(args.batch, 3, args.image_size, args.image_size, device=device) * 2 - 1
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(args.warmup):
        step(real)
    synchronize(device)
    warm = time.perf_counter()
    for _ in range(args.steps):
        step(real)
    synchronize(device)
    seconds = time.perf_counter() - warm
    return {
        "model": model, "bf16": bf16, "channels_last": channels_last, "compile": use_compile,
        "images_per_s": round(args.batch * args.steps / seconds, 2),
        "ms_per_step": round(1000 * seconds / args.steps, 2), "warmup_s": round(warm - started, 2),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
    }  # fmt: skip


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=None, help=f"default: all of {MODELS}")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--budget-s", type=float, default=480, help="start no new set after this many s (0: none)")
    parser.add_argument("--full", action="store_true", help="all 8 on/off combinations")
    parser.add_argument("--quick", action="store_true", help="dcgan, r3gan-tiny; 16 px, batch 2, 1+1 steps; no budget")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.image_size, args.batch, args.warmup, args.steps, args.budget_s = 16, 2, 1, 1, 0
    args.models = args.models or (["dcgan", "r3gan-tiny"] if args.quick else list(MODELS))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # as the loop does
    name = device_name(device)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]
    out = args.json or REPO / "bench" / "results" / f"gpu-{slug}{'-quick' if args.quick else ''}.json"
    sets = list(itertools.product((False, True), repeat=3)) if args.full else [*EAGER_SETS, *COMPILED_SETS]
    plan = [(m, s) for s in sets if not s[2] for m in args.models] + [(m, s) for s in sets if s[2] for m in args.models]
    report = {"device": name, "torch": torch.__version__, "image_size": args.image_size, "batch": args.batch,
              "warmup": args.warmup, "steps": args.steps, "quick": args.quick, "runs": [], "skipped": []}  # fmt: skip
    began = time.perf_counter()
    print(f"{name}, torch {torch.__version__}, {args.image_size} px, batch {args.batch}")
    for model, options in plan:
        label = f"{model:12s} bf16={options[0]!s:5s} channels_last={options[1]!s:5s} compile={options[2]!s:5s}"
        if args.budget_s and time.perf_counter() - began > args.budget_s:
            report["skipped"].append(label)
            print(f"{label} skipped (budget)")
            continue
        try:
            run = measure(model, options, args, device)
        except Exception as e:  # an option a device or torch build lacks is a result too, not the end of the run
            run = {"model": model, "bf16": options[0], "channels_last": options[1], "compile": options[2],
                   "error": " ".join(str(e).split())[:300]}  # fmt: skip
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        report["runs"].append(run)
        print(f"{label} " + (f"{run['images_per_s']:9.1f} img/s" if "error" not in run else f"error: {run['error']}"))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
