"""The latents of sampled images, each image from its own random stream, with BigGAN's truncation trick.

Usage:
    from pipeline.train.latents import latents, candidate_latents
    z = latents(seed=0, draw=0, start=0, count=1000, z_dim=100)                  # float32 (1000, 100), on the CPU
    z = latents(0, 0, 0, 1000, 100, truncation=0.7)                            # every |entry| <= 0.7
    zs = candidate_latents(0, 0, 0, 1000, 100, candidates=4, truncation=0.7)   # (1000, 4, 100)

Image i of draw d owns one stream: a torch.Generator seeded from numpy's SeedSequence([seed, d, i]). Everything
image i needs is drawn from it, in order: its first latent, the resamplings truncation asks for, then (for a
critic's choice among candidates, pipeline.train.rejection) the next candidates. So image i depends only on
(seed, d, i, settings), never on the batch, the count or the device, and candidate 0 with truncation off is the
latent drawn before these knobs existed (the same torch.randn call on the same stream): byte-identical images.

Truncation (Brock et al. 2019, BigGAN): entries with |z| > t are replaced by fresh N(0, 1) draws from the same
stream until every entry lies within t; entries already within t are kept. Lower t trades variety (recall) for
typical images (precision). 0 is off. BigGAN's trick resamples z itself; StyleGAN's trunc_psi (lucidrains'
0.7 in HW6) interpolates a mapping network's w toward its mean instead, which our families have no w for.
A t so small that resampling does not end within MAX_ROUNDS rounds is a UserError naming it.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.core.errors import UserError

MAX_ROUNDS = 100_000  # resampling rounds per latent: t = 0.01 needs about 600 at worst for 100 entries


def index_stream(seed: int, draw: int, index: int) -> torch.Generator:
    """Image `index` of `draw`'s own random stream."""
    state = np.random.SeedSequence([seed, draw, index]).generate_state(2, np.uint32)
    gen = torch.Generator()
    gen.manual_seed(int(state[0]) << 32 | int(state[1]))
    return gen


def next_latent(stream: torch.Generator, z_dim: int, truncation: float = 0.0) -> torch.Tensor:
    """The stream's next latent, float32 (z_dim,); with truncation t > 0, entries beyond t resampled from it."""
    z = torch.randn(z_dim, generator=stream)
    if truncation <= 0:
        return z
    for _ in range(MAX_ROUNDS):
        beyond = z.abs() > truncation
        n = int(beyond.sum())
        if n == 0:
            return z
        z[beyond] = torch.randn(n, generator=stream)
    raise UserError(
        f"sample.truncation={truncation:g} is too small: a latent still had entries beyond it after {MAX_ROUNDS} "
        "resamplings (use 0.05 or more, or 0 for off)"
    )


def candidate_latents(
    seed: int, draw: int, start: int, count: int, z_dim: int, candidates: int = 1, truncation: float = 0.0
) -> torch.Tensor:
    """Latents of images start .. start+count-1 of `draw`, `candidates` per image: float32 (count, candidates,
    z_dim) on the CPU. Candidate j of image i is the j-th latent of image i's stream."""
    out = torch.empty(count, candidates, z_dim)
    for k in range(count):
        stream = index_stream(seed, draw, start + k)
        for j in range(candidates):
            out[k, j] = next_latent(stream, z_dim, truncation)
    return out


def latents(seed: int, draw: int, start: int, count: int, z_dim: int, truncation: float = 0.0) -> torch.Tensor:
    """z for images start .. start+count-1 of `draw`, float32 (count, z_dim) on the CPU."""
    return candidate_latents(seed, draw, start, count, z_dim, 1, truncation)[:, 0]
