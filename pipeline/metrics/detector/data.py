"""Positives and negatives for the anime-face detector, made on the fly from real faces and a seeded generator.

Usage:
    rng = np.random.default_rng(seed)
    work = to_work(faces[idx])                    # uint8 (N, H, W, 3) -> float (N, 3, 64, 64), 0..255
    pos = jittered_faces(work, rng)               # (N, 3, 48, 48): small shifts, zooms and flips of each face
    neg = negatives("blurred", work, rng)         # (N, 3, 48, 48): one negative of that kind per face
    neg, kinds = mixed_negatives(work, rng)       # kinds drawn uniformly from NEGATIVE_KINDS, one per face

Negatives decide what the detector's AFD rewards ("a person would see an anime face here"):
- shuffled: the face cut into a 3x3 or 4x4 grid and the tiles permuted (colours kept, structure gone);
- rotated: a face turned 90, 180 or 270 degrees (features present, arrangement wrong);
- crop: a zoomed-in corner or strip holding no whole face (one eye, hair, background);
- noise: per-pixel noise around a random colour, grey or coloured;
- flat: one colour with faint noise;
- smooth: a smooth random colour field (a few random colours or a face's own colours, bicubically upsampled):
  the blobs an early GAN draws, which a fine-tuned O-Net accepted 45% of the time without this kind;
- blurred: a face blurred so strongly (Gaussian sigma 5 to 8 at 64 px) that only a skin-and-hair blob is left.
Mildly blurred faces (sigma 2) are neither positives nor negatives; the stage reports how many are still found.

All pictures are made at a fixed working size (64x64, the course's training size) so that the crop sizes and blur
radii mean the same for any clean dataset, then resized to the detector's input with the function detect() uses.
Every random choice comes from the numpy Generator passed in: the same seed gives the same images.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.metrics.detector.model import INPUT_SIZE, resize, to_tensor

WORK_SIZE = 64
NEGATIVE_KINDS = ("shuffled", "rotated", "crop", "noise", "flat", "smooth", "blurred")
STRONG_BLUR_SIGMA = (5.0, 8.0)  # at 64 px; the DESIGN's measured "heavily blurred" was radius 6
MILD_BLUR_SIGMA = 2.0


def to_work(faces: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) faces -> float32 (N, 3, 64, 64) in 0..255."""
    return resize(to_tensor(faces), WORK_SIZE)


def jittered_faces(work: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Each face cropped to a random 85-100% square at a random position, maybe mirrored, then resized."""
    n = len(work)
    sides = np.rint(rng.uniform(0.85, 1.0, n) * WORK_SIZE).astype(int)
    flips = rng.random(n) < 0.5
    out = torch.empty(n, 3, INPUT_SIZE, INPUT_SIZE)
    for i in range(n):
        out[i] = _crop_resize(work[i], sides[i], rng)
        if flips[i]:
            out[i] = out[i].flip(-1)
    return out


def clean_faces(work: torch.Tensor) -> torch.Tensor:
    """The faces as they are, resized to the detector's input (what detect() sees for a real face)."""
    return resize(work, INPUT_SIZE)


def blurred_faces(work: torch.Tensor, sigmas: np.ndarray) -> torch.Tensor:
    """Each face blurred with its own Gaussian sigma (in 64 px units), then resized."""
    return resize(torch.stack([gaussian_blur(img, float(s)) for img, s in zip(work, sigmas, strict=True)]), INPUT_SIZE)


def negatives(kind: str, work: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """One negative of `kind` per face in `work` (kinds that ignore the face still make one per row)."""
    n = len(work)
    if kind == "shuffled":
        return torch.stack([_shuffle_tiles(img, int(rng.choice([3, 4])), rng) for img in clean_faces(work)])
    if kind == "rotated":
        turns = rng.integers(1, 4, n)
        return torch.stack(
            [img.rot90(int(k), dims=(1, 2)) for img, k in zip(jittered_faces(work, rng), turns, strict=True)]
        )
    if kind == "crop":
        sides = np.rint(rng.uniform(0.25, 0.5, n) * WORK_SIZE).astype(int)
        return torch.stack([_crop_resize(img, int(s), rng) for img, s in zip(work, sides, strict=True)])
    if kind == "noise":
        return _noise(n, rng)
    if kind == "flat":
        colour = torch.from_numpy(rng.uniform(0, 255, (n, 3, 1, 1))).float()
        faint = torch.from_numpy(rng.normal(0, 1, (n, 3, INPUT_SIZE, INPUT_SIZE))).float()
        faint *= torch.from_numpy(rng.uniform(0, 3, (n, 1, 1, 1))).float()
        return (colour + faint).clamp(0, 255)
    if kind == "smooth":
        return torch.stack([_smooth_field(img, rng) for img in work])
    if kind == "blurred":
        return blurred_faces(jittered_work(work, rng), rng.uniform(*STRONG_BLUR_SIGMA, n))
    raise ValueError(f"unknown negative kind {kind!r}")


def mixed_negatives(work: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, list[str]]:
    """One negative per face, its kind drawn uniformly; returned in the faces' order."""
    picks = rng.integers(0, len(NEGATIVE_KINDS), len(work))
    out = torch.empty(len(work), 3, INPUT_SIZE, INPUT_SIZE)
    for k, kind in enumerate(NEGATIVE_KINDS):
        rows = np.flatnonzero(picks == k)
        if len(rows):
            out[torch.from_numpy(rows)] = negatives(kind, work[torch.from_numpy(rows)], rng)
    return out, [NEGATIVE_KINDS[k] for k in picks]


def jittered_work(work: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Like jittered_faces but kept at the working size (for blurs defined in 64 px units)."""
    n = len(work)
    sides = np.rint(rng.uniform(0.85, 1.0, n) * WORK_SIZE).astype(int)
    out = torch.stack([_crop_resize(img, s, rng, WORK_SIZE) for img, s in zip(work, sides, strict=True)])
    flips = torch.from_numpy(rng.random(n) < 0.5)
    out[flips] = out[flips].flip(-1)
    return out


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of one (3, H, W) image, reflecting at the borders."""
    radius = min(math.ceil(3 * sigma), img.shape[-1] - 1)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k /= k.sum()
    out = F.pad(img[None], (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    out = F.conv2d(out, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    return out[0]


def _crop_resize(img: torch.Tensor, side: int, rng: np.random.Generator, size: int = INPUT_SIZE) -> torch.Tensor:
    top, left = (int(v) for v in rng.integers(0, WORK_SIZE - side + 1, 2))
    return resize(img[None, :, top : top + side, left : left + side], size)[0]


def _shuffle_tiles(img: torch.Tensor, grid: int, rng: np.random.Generator) -> torch.Tensor:
    t = INPUT_SIZE // grid
    tiles = img.unfold(1, t, t).unfold(2, t, t)  # (3, grid, grid, t, t)
    tiles = tiles.reshape(3, grid * grid, t, t)
    order = rng.permutation(grid * grid)
    if (order == np.arange(grid * grid)).all():
        order = np.roll(order, 1)
    tiles = tiles[:, torch.from_numpy(order)].reshape(3, grid, grid, t, t)
    return tiles.permute(0, 1, 3, 2, 4).reshape(3, INPUT_SIZE, INPUT_SIZE)


def _noise(n: int, rng: np.random.Generator) -> torch.Tensor:
    mean = rng.uniform(40, 215, (n, 3, 1, 1))
    std = rng.uniform(10, 80, (n, 1, 1, 1))
    grey = rng.random(n) < 0.3
    z = rng.normal(0, 1, (n, 3, INPUT_SIZE, INPUT_SIZE))
    z[grey] = z[grey][:, :1]
    return torch.from_numpy(mean + std * z).float().clamp(0, 255)


def _smooth_field(face: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A few random colours, bicubically smoothed; half the time picked from the face's own pixels, so the blobs
    have a face's palette (skin, hair) as an early generator's do."""
    cells = int(rng.integers(2, 9))
    if rng.random() < 0.5:
        field = torch.from_numpy(rng.uniform(0, 255, (1, 3, cells, cells))).float()
    else:
        picks = torch.from_numpy(rng.integers(0, face.shape[1] * face.shape[2], cells * cells))
        field = face.reshape(3, -1)[:, picks].reshape(1, 3, cells, cells)
    out = F.interpolate(field, size=(INPUT_SIZE, INPUT_SIZE), mode="bicubic", align_corners=False)[0]
    return out.clamp(0, 255)
