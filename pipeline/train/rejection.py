"""Sampling knobs behind one call: truncation, and a critic's choice among each image's candidates.

Usage:
    from pipeline.train.rejection import SamplingKnobs, draw_images
    knobs = SamplingKnobs(truncation=0.7, rejection="top_k", rejection_k=4)   # or SamplingKnobs.of(params.sample)
    critic = load_critic(...) if knobs.needs_critic else None                  # pipeline.train.critic_file
    drawn = draw_images(generator, critic, knobs, seed=0, draw=0, count=1000, batch_size=250)
    drawn.images                     # uint8 (1000, H, W, 3)
    drawn.scores, drawn.first_scores  # the critic's logit of each kept image and of each image's candidate 0

rejection:
  none   every image is its stream's first latent (pipeline.train.latents): exactly generate().
  top_k  image i's k candidates are the first k latents of image i's own stream; the critic scores each candidate's
         pixels (uint8, as submitted, normalised as training's real faces) and the highest score is kept (ties: the
         earlier). k = 1 is `none`. Image i depends only on (seed, draw, i, knobs): image 7 alone is image 7 of 1,000.
  drs    Discriminator Rejection Sampling (Azadi et al. 2019), per image: candidate j of image i is accepted with
         probability sigmoid(F), F = D - D_M - log(1 - exp(D - D_M - eps)) - gamma, where D is the critic's logit,
         D_M the highest logit over BURN_IN images of a stream of their own and gamma the DRS_PERCENTILE-th percentile
         of F over them (a shift of F); the uniform that decides is drawn from image i's stream after its
         candidate's latent. At most k tries: when none is accepted, the highest-scored try is kept. D_M and gamma
         stay fixed (the paper raises D_M during sampling, which would make image i depend on the images before it).
         A BCE critic's logit estimates log p_data/p_g (what DRS needs); other objectives' critics are not calibrated,
         so drs accepts only train.loss gan.

The generator and the critic run in float64 (pipeline.train.sampling's float64_copy) on `device`: the critic in eval
mode, so BatchNorm uses its running statistics and a score does not depend on the other images of the batch. (A
BatchNorm critic trained in train mode, on batches of all-real or all-fake images, can rank differently in eval mode:
sample.json's critic_mean_kept against critic_mean_first shows what the choice did by the critic's own measure.)
Per pass, batch_size candidate images are generated (batch_size // k images' candidates).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from pipeline.core.errors import UserError
from pipeline.train.critic_file import TrainedCritic
from pipeline.train.latents import candidate_latents, index_stream, latents, next_latent
from pipeline.train.sampling import float64_copy, generate, to_uint8

BURN_IN = 1000  # DRS: images whose highest logit is D_M
BURN_IN_DRAW = 2**32  # DRS: the burn-in images' draw number, apart from every draw sampled
DRS_PERCENTILE = 95.0  # DRS: gamma, the shift of F (a knob of the paper's setting the acceptance rate): fixed here
DRS_EPS = 1e-6


@dataclass(frozen=True)
class SamplingKnobs:
    truncation: float = 0.0
    rejection: Literal["none", "top_k", "drs"] = "none"
    rejection_k: int = 4

    @classmethod
    def of(cls, sample: Any) -> SamplingKnobs:
        """The knobs of a params.sample section."""
        return cls(float(sample.truncation), sample.rejection, int(sample.rejection_k))

    def __post_init__(self) -> None:
        if not self.truncation >= 0:
            raise UserError(f"sample.truncation must be 0 (off) or a threshold > 0, got {self.truncation}")
        if self.rejection_k < 1:
            raise UserError(f"sample.rejection_k must be at least 1, got {self.rejection_k}")
        if self.rejection not in ("none", "top_k", "drs"):
            raise UserError(f"sample.rejection: expected none, top_k or drs, got {self.rejection!r}")

    @property
    def needs_critic(self) -> bool:
        return self.rejection != "none"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Drawn:
    images: np.ndarray
    scores: np.ndarray | None = None  # float64 (count,): the kept candidates' logits
    first_scores: np.ndarray | None = None  # float64 (count,): candidate 0's logits
    accepted: float | None = None  # drs: the share of images accepted within k tries


def knob_metrics(knobs: SamplingKnobs, critic: TrainedCritic | None, drawn: Drawn) -> dict[str, Any]:
    """What metrics/sample.json records of the knobs: the knobs, and with a critic its step and mean logits."""
    out: dict[str, Any] = knobs.as_dict()
    if critic is not None and drawn.scores is not None:
        out["critic_step"] = critic.step
        out["critic_mean_kept"] = round(float(drawn.scores.mean()), 6)
        out["critic_mean_first"] = round(float(drawn.first_scores.mean()), 6)  # what no rejection would have kept
    if drawn.accepted is not None:
        out["drs_accepted"] = round(drawn.accepted, 6)
    return out


def draw_images(
    generator: nn.Module, critic: TrainedCritic | None, knobs: SamplingKnobs, seed: int, draw: int, count: int,
    batch_size: int, device: str | torch.device = "cpu", start: int = 0,
) -> Drawn:  # fmt: skip
    """`count` images of `draw` from image `start` on, with the knobs; critic: required when knobs.needs_critic."""
    if knobs.needs_critic and critic is None:
        raise UserError(f"sample.rejection={knobs.rejection} needs the trained critic")
    if knobs.rejection == "drs" and critic.loss != "gan":
        raise UserError(f"sample.rejection=drs needs a critic trained with train.loss=gan (its logit estimates "
                        f"log p_data/p_g); this one trained with {critic.loss!r}: use top_k")  # fmt: skip
    if knobs.rejection == "none":
        return Drawn(generate(generator, seed, draw, count, batch_size, device, knobs.truncation, start))
    sampler = _Sampler(generator, critic, knobs, device)
    per_pass = max(1, batch_size // knobs.rejection_k)
    choose = _top_k if knobs.rejection == "top_k" else _drs
    return choose(sampler, seed, draw, range(start, start + count), per_pass)


class _Sampler:
    """The float64 generator and critic on the device."""

    def __init__(self, generator: nn.Module, critic: TrainedCritic | None, knobs: SamplingKnobs, device: Any) -> None:
        self.z_dim, self.knobs, self.device = generator.z_dim, knobs, device
        self.generator = float64_copy(generator, device)
        self.critic = float64_copy(critic.module, device) if critic is not None else None

    def images(self, z: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return to_uint8(self.generator(z.to(device=self.device, dtype=torch.float64)))

    def scores(self, images: np.ndarray) -> np.ndarray:
        """The critic's logits of uint8 images, normalised as training's real faces: x / 255, then (x - 0.5) / 0.5."""
        x = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2).to(torch.float64)
        with torch.inference_mode():
            return self.critic(x.div(255).sub(0.5).div(0.5)).reshape(-1).cpu().numpy()


def _passes(indices: range, per_pass: int) -> list[tuple[int, int]]:
    """(first image, image count) of each pass over the indices."""
    return [(s, min(per_pass, indices.stop - s)) for s in range(indices.start, indices.stop, per_pass)]


def _top_k(sampler: _Sampler, seed: int, draw: int, indices: range, per_pass: int) -> Drawn:
    k, z_dim = sampler.knobs.rejection_k, sampler.z_dim
    images, kept, first = [], [], []
    for start, n in _passes(indices, per_pass):
        z = candidate_latents(seed, draw, start, n, z_dim, k, sampler.knobs.truncation).view(n * k, z_dim)
        pixels = sampler.images(z)
        scores = sampler.scores(pixels).reshape(n, k)
        best = scores.argmax(axis=1)  # the first of equal maxima
        images.append(pixels.reshape(n, k, *pixels.shape[1:])[np.arange(n), best])
        kept.append(scores[np.arange(n), best])
        first.append(scores[:, 0])
    return Drawn(np.concatenate(images), np.concatenate(kept), np.concatenate(first))


def _drs(sampler: _Sampler, seed: int, draw: int, indices: range, per_pass: int) -> Drawn:
    d_max, gamma = _drs_calibration(sampler, seed, per_pass)
    images, kept, first, accepted = [], [], [], 0
    for start, n in _passes(indices, per_pass):
        streams = [index_stream(seed, draw, start + i) for i in range(n)]
        best = np.full(n, -np.inf)
        out: list[np.ndarray | None] = [None] * n
        scores0 = np.empty(n)
        pending = list(range(n))
        for j in range(sampler.knobs.rejection_k):
            z = torch.stack([next_latent(streams[i], sampler.z_dim, sampler.knobs.truncation) for i in pending])
            u = [float(torch.rand(1, generator=streams[i], dtype=torch.float64)) for i in pending]
            pixels = sampler.images(z)
            scores = sampler.scores(pixels)
            p = _acceptance(scores, d_max, gamma)
            still = []
            for row, i in enumerate(pending):
                if j == 0:
                    scores0[i] = scores[row]
                if u[row] < p[row] or scores[row] > best[i]:  # accepted, or the best try so far (the fallback)
                    best[i], out[i] = scores[row], pixels[row]
                if u[row] < p[row]:
                    accepted += 1
                else:
                    still.append(i)
            if not still:
                break
            pending = still
        images.append(np.stack(out))
        kept.append(best)
        first.append(scores0)
    return Drawn(np.concatenate(images), np.concatenate(kept), np.concatenate(first), accepted / len(indices))


def _drs_calibration(sampler: _Sampler, seed: int, per_pass: int) -> tuple[float, float]:
    """D_M, the highest logit over the burn-in images, and gamma, the DRS_PERCENTILE-th percentile of F there."""
    scores = np.concatenate([
        sampler.scores(sampler.images(latents(seed, BURN_IN_DRAW, s, n, sampler.z_dim, sampler.knobs.truncation)))
        for s, n in _passes(range(BURN_IN), per_pass * sampler.knobs.rejection_k)
    ])  # fmt: skip
    d_max = float(scores.max())
    return d_max, float(np.percentile(_f(scores, d_max), DRS_PERCENTILE))


def _f(scores: np.ndarray, d_max: float) -> np.ndarray:
    """Azadi et al.'s F before the shift: log of the acceptance odds exp(D - D_M) / (1 - exp(D - D_M))."""
    delta = np.minimum(scores - d_max, 0.0)  # a logit above the burn-in's highest is accepted as surely as D_M
    return delta - np.log1p(-np.exp(delta - DRS_EPS))


def _acceptance(scores: np.ndarray, d_max: float, gamma: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(_f(scores, d_max) - gamma)))
