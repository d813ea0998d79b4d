"""Differentiable augmentation of the critic's inputs (DiffAugment, Zhao et al. 2020), for small face sets.

Usage:
    from pipeline.train.augment import augmentation
    aug = augmentation(["color", "translation", "cutout"], seed=2022, step=step, rank=0)   # train.augment; []: off
    scores = critic(aug(real)), critic(aug(fake))   # every image the critic sees, real and fake, in both steps

The same random transforms go on the real and the generated images before the critic, and they are differentiable, so
the generator learns through them and does not learn to make augmented faces (the leak that augmenting only the real
images has). Policies, each per image:
- color: brightness + [-0.5, 0.5), saturation x [0, 2), contrast x [0.5, 1.5);
- translation: a shift of up to 1/8 of the side in each direction, zeros coming in;
- cutout: a zeroed square of half the side at a random place (it may reach past the border).
DiffAugment on FFHQ: 5k images FID 26.6 -> 10.5, but 70k 3.81 -> 4.24, which is why it is off by default (the course
has 71k faces). The draws depend on (seed, step, rank) only, so a resumed run sees the same transforms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from pipeline.core.seeding import AUGMENT, derive_seed, seeded_generator

POLICIES = ("color", "translation", "cutout")
Transform = Callable[[torch.Tensor], torch.Tensor]


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


def augmentation(
    policies: Sequence[str], seed: int, step: int, rank: int, device: torch.device | str = "cpu"
) -> Transform:
    """One training step's transform for train.augment's policies (the identity for none), its draws seeded by
    (seed, step, rank); ValueError for a policy not in POLICIES."""
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}; expected some of {POLICIES}")
    if not policies:
        return identity
    gen = seeded_generator(derive_seed(seed, AUGMENT, step, rank), device)
    ordered = [_TRANSFORMS[p] for p in POLICIES if p in policies]  # a fixed order, whatever the list's

    def transform(x: torch.Tensor) -> torch.Tensor:
        for apply in ordered:
            x = apply(x, gen)
        return x

    return transform


def _uniform(x: torch.Tensor, gen: torch.Generator, low: float, high: float) -> torch.Tensor:
    """One value per image, shaped to broadcast over (C, H, W)."""
    u = torch.rand(x.size(0), 1, 1, 1, generator=gen, device=x.device, dtype=torch.float32)
    return (low + (high - low) * u).to(x.dtype)


def color(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    x = x + _uniform(x, gen, -0.5, 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * _uniform(x, gen, 0.0, 2.0) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(x, gen, 0.5, 1.5) + mean


def translation(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    reach_h, reach_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    shift_h = torch.randint(-reach_h, reach_h + 1, (n, 1, 1), generator=gen, device=x.device)
    shift_w = torch.randint(-reach_w, reach_w + 1, (n, 1, 1), generator=gen, device=x.device)
    # read pixel (i + shift) of a copy padded by one zero on every side: a shift past the border reads the zeros
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + shift_h + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + shift_w + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)  # N, H+2, W+2, C
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + (1 - size_h % 2), (n, 1, 1), generator=gen, device=x.device) - size_h // 2
    left = torch.randint(0, w + (1 - size_w % 2), (n, 1, 1), generator=gen, device=x.device) - size_w // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_TRANSFORMS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "color": color, "translation": translation, "cutout": cutout,
}  # fmt: skip
