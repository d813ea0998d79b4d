"""Horizontal flips of real training faces, a pure function of (seed, step, critic step): resume-safe.

Usage:
    from pipeline.data.flips import flip_mask, random_flip
    real = random_flip(real, seed=2022, step=17, critic_step=0, rank=0)   # about half the rows mirrored
    flip_mask(seed, step, critic_step, global_batch)                       # which rows of the global batch flip

The mask is drawn for the global batch from a generator seeded by (seed, FLIP, step, critic_step) and each rank
takes its own slice, so which faces are mirrored does not depend on the number of processes or on where a run
resumed. Anime faces are left-right symmetric enough that a mirror image is another plausible face (R3GAN's
--mirror, StyleGAN2-ADA's xflip): it doubles the data at no cost.
"""

from __future__ import annotations

import torch

from pipeline.core.seeding import FLIP, derive_seed, seeded_generator


def flip_mask(seed: int, step: int, critic_step: int, global_batch: int) -> torch.Tensor:
    """Bool (global_batch,) on the CPU: True where that row of the batch is mirrored."""
    gen = seeded_generator(derive_seed(seed, FLIP, step, critic_step))
    return torch.rand(global_batch, generator=gen) < 0.5


def random_flip(
    real: torch.Tensor, seed: int, step: int, critic_step: int, rank: int, world_size: int = 1
) -> torch.Tensor:
    """Mirror (left-right) this rank's rows of the global batch that flip_mask picks; a new tensor."""
    per_rank = real.size(0)
    mask = flip_mask(seed, step, critic_step, per_rank * world_size)[rank * per_rank : (rank + 1) * per_rank]
    mask = mask.to(real.device).view(-1, 1, 1, 1)
    return torch.where(mask, real.flip(3), real)
