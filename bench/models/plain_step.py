"""One plain training step of each network, built directly from the families' modules: what bench.models.gpu_speed
times and bench.models.flops counts.

Usage:
    from bench.models.plain_step import NETWORKS, PlainStep, build
    g, d, z_dim = build("r3gan-tiny", image_size=64)
    step = PlainStep("dcgan", 64, torch.device("cpu"), bf16=False, channels_last=False, compile_backend=None)
    step(real_batch)                             # one critic step and one generator step

The same work per step as pipeline/train/loop.py's loop:
  dcgan        the course's networks and gan (BCE) loss, BatchNorm critic, Adam(0.5, 0.999); the G step reuses the
               critic step's fake batch;
  r3gan-<p>    pipeline/train/families/r3gan.py preset p, relativistic pairing loss, R1 and R2 every critic
               step (gamma 1; lazy regularisation would be cheaper), Adam(0, 0.99); the G step reuses the fake batch.
The penalties differentiate the plain critic twice in float32, eagerly (double backward through torch.compile
is unsupported or wrong, pytorch issues 91469 and 183603), as the loop does; bf16 autocast, channels_last and
torch.compile apply to the adversarial terms. No data loading, no EMA update (both small next to the step).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.train.families.dcgan import Critic, Generator
from pipeline.train.families.r3gan import R3Critic, R3Generator

NETWORKS = ("dcgan", "r3gan-tiny", "r3gan-small", "r3gan-paper")


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
