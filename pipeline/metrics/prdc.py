"""Precision and recall (Kynkäänniemi et al. 2019) and density and coverage (Naeem et al. 2020) of feature sets.

Usage:
    from pipeline.metrics.prdc import PrdcReference, prdc
    ref = PrdcReference(reference_features, k=3)     # the reference's k-NN radii: computed once, reused per draw
    ref.score(draw_features)                         # {"precision", "recall", "density", "coverage"}
    prdc(reference_features, draw_features, k=3)     # the same numbers in one call

Each set's manifold is the union of balls around its points whose radius is the distance to the point's k-th
nearest neighbour in the same set (the point itself not counted). precision: share of draw points inside the
reference manifold; recall: share of reference points inside the draw manifold; density: mean number of reference
balls holding a draw point, divided by k; coverage: share of reference balls holding at least one draw point.
"Inside" is strict (distance < radius), as in the reference implementation (the `prdc` package), whose numbers
these equal on the same features.

Distances are Euclidean, computed in float64 as sqrt(|x|^2 - 2 x.y + |y|^2) over blocks of rows, so memory is
bounded by BLOCK_BYTES whatever the set sizes (a 71k reference never needs its 71k x 71k distance matrix).
"""

from __future__ import annotations

import numpy as np

BLOCK_BYTES = 64 * 1024 * 1024  # float64 distances held at once


def row_block(cols: int) -> int:
    """Rows per block of a (rows, cols) float64 distance matrix that fits BLOCK_BYTES."""
    return max(1, BLOCK_BYTES // (8 * max(1, cols)))


def squared_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def distances(a: np.ndarray, b: np.ndarray, a_sq: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """Euclidean distances (len(a), len(b)) in float64; rounding below 0 clipped."""
    d2 = a_sq[:, None] - 2.0 * (a @ b.T) + b_sq[None, :]
    return np.sqrt(np.maximum(d2, 0.0, out=d2), out=d2)


def kth_neighbour_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row of x to its k-th nearest other row (self excluded), block by block."""
    x = np.asarray(x, np.float64)
    if not 1 <= k < len(x):
        raise ValueError(f"k-NN radii need 1 <= k < number of points (k={k}, points={len(x)})")
    sq = squared_norms(x)
    radii = np.empty(len(x), np.float64)
    step = row_block(len(x))
    for start in range(0, len(x), step):
        stop = min(start + step, len(x))
        d = distances(x[start:stop], x, sq[start:stop], sq)
        d[np.arange(stop - start), np.arange(start, stop)] = 0.0  # a point's distance to itself is exactly 0
        radii[start:stop] = np.partition(d, k, axis=1)[:, k]  # index 0 is the point itself
    return radii


class PrdcReference:
    def __init__(self, features: np.ndarray, k: int) -> None:
        self.features = np.asarray(features, np.float64)
        self.k = k
        self.sq = squared_norms(self.features)
        self.radii = kth_neighbour_radii(self.features, k)

    def score(self, features: np.ndarray) -> dict[str, float]:
        fake = np.asarray(features, np.float64)
        if fake.ndim != 2 or fake.shape[1] != self.features.shape[1]:
            raise ValueError(f"feature dims differ: {fake.shape} against {self.features.shape}")
        fake_radii = kth_neighbour_radii(fake, self.k)
        fake_sq = squared_norms(fake)
        in_reference = np.zeros(len(fake), bool)  # a draw point inside some reference ball
        balls_holding = np.zeros(len(fake), np.int64)
        recalled = covered = 0
        step = row_block(len(fake))
        for start in range(0, len(self.features), step):
            stop = min(start + step, len(self.features))
            d = distances(self.features[start:stop], fake, self.sq[start:stop], fake_sq)
            inside = d < self.radii[start:stop, None]
            in_reference |= inside.any(axis=0)
            balls_holding += inside.sum(axis=0)
            recalled += int((d < fake_radii[None, :]).any(axis=1).sum())
            covered += int((d.min(axis=1) < self.radii[start:stop]).sum())
        n = len(self.features)
        return {
            "precision": float(in_reference.mean()),
            "recall": recalled / n,
            "density": float(balls_holding.mean()) / self.k,
            "coverage": covered / n,
        }


def prdc(reference: np.ndarray, features: np.ndarray, k: int) -> dict[str, float]:
    return PrdcReference(reference, k).score(features)
