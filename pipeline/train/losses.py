"""GAN objectives on raw critic scores (logits): gan (the course's BCE), wgan, wgan-gp, hinge, rpgan; penalties.

Usage:
    from pipeline.train.losses import critic_loss, generator_loss, gradient_penalty, zero_centred_penalty
    loss_d = critic_loss("gan", critic(real), critic(fake.detach()))
    loss_d = loss_d + gp_lambda * gradient_penalty(critic, real, fake.detach(), noise_generator)  # wgan-gp
    loss_g = generator_loss("gan", critic(fake))
    loss_g = generator_loss("rpgan", critic(fake), critic(real))   # relativistic pairing needs the real scores
    r1 = zero_centred_penalty(critic, real)     # R1; on fakes it is R2. R3GAN: loss_d + gamma / 2 * (r1 + r2)

`rpgan` is relativistic pairing (Jolicoeur-Martineau 2018; R3GAN, Huang et al. 2024): the critic minimises
softplus(-(D(x_i) - D(G(z_i)))) over pairs i of a real and a fake, the generator the mirror
softplus(-(D(G(z_i)) - D(x_i))).

Scores are cast to float32 first, so the losses are the same under bf16 autocast. `gan` is the course's
(BCE(D(x), 1) + BCE(D(G(z)), 0)) / 2 with the critic's final sigmoid folded into BCE-with-logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("gan", "wgan", "wgan-gp", "hinge", "rpgan")


def critic_loss(loss: str, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    real, fake = real_scores.float(), fake_scores.float()
    if loss == "gan":
        return (
            F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
        ) / 2
    if loss in ("wgan", "wgan-gp"):
        return fake.mean() - real.mean()
    if loss == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if loss == "rpgan":
        return F.softplus(-(real - fake)).mean()
    raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES}")


def generator_loss(loss: str, fake_scores: torch.Tensor, real_scores: torch.Tensor | None = None) -> torch.Tensor:
    """real_scores: needed by rpgan only (the critic's scores of the real batch paired with these fakes)."""
    fake = fake_scores.float()
    if loss == "rpgan":
        if real_scores is None:
            raise ValueError("rpgan's generator loss needs the real scores")
        return F.softplus(-(fake - real_scores.float())).mean()
    if loss == "gan":
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))  # the non-saturating loss
    if loss in ("wgan", "wgan-gp", "hinge"):
        return -fake.mean()
    raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES}")


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """WGAN-GP: mean over the batch of (||grad_x D(x_hat)||_2 - 1)^2 at random points between real and fake.

    Always in float32, also inside a bf16 autocast region: a gradient norm held to 1 needs the precision."""
    with torch.autocast(real.device.type, enabled=False):
        alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device, generator=generator, dtype=torch.float32)
        x_hat = (alpha * real.float() + (1 - alpha) * fake.float()).requires_grad_(True)
        scores = critic(x_hat).float()
        (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
        return ((grad.float().flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def zero_centred_penalty(critic: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ||grad_x D(x)||^2 (R1 on real images, R2 on fakes), in float32 outside autocast.

    Differentiable (create_graph): its gradient w.r.t. the critic's weights needs the second derivative, so
    `critic` must be the plain module (DDP and compiled graphs cannot differentiate twice)."""
    x = (x.detach().float() if x.dtype.itemsize < 4 else x.detach()).requires_grad_(True)  # float64 stays
    with torch.autocast(device_type=x.device.type, enabled=False):
        scores = critic(x).float()
    (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()


def clip_weights(critic: nn.Module, clip_value: float) -> None:
    """WGAN's Lipschitz constraint: clamp every critic parameter to [-clip_value, clip_value] after its step."""
    with torch.no_grad():
        for p in critic.parameters():
            p.clamp_(-clip_value, clip_value)
