"""Kernel Inception Distance: the unbiased MMD^2 with the cubic polynomial kernel, over seeded subsets.

Usage:
    from pipeline.metrics.kid import KidReference, kernel_inception_distance
    mean, std = kernel_inception_distance(features_a, features_b, subsets=100, subset_size=1000, seed=0)
    ref = KidReference(reference_features, subsets=100, subset_size=1000, seed=0)   # for many draws:
    mean, std = ref.score(draw_features)                                            # same numbers as above

k(x, y) = (x.y / d + 1)^3 (Bińkowski et al., 2018). Each subset takes m = min(subset_size, len(a), len(b)) rows of
each set without replacement; the rows of a and of b come from two generators seeded from `seed`, so the reference
side's subsets do not depend on the draw. The same features give the same numbers. The estimator is unbiased: two
draws from one distribution give a mean near 0 (it can be slightly negative).

Cost: the reference-side kernel sums are computed once per KidReference and reused by every draw (from one Gram
matrix of the pool when that is no bigger than the subsets' products, as for a pool of m faces); each draw then
needs one len(a) x len(a) and one len(a) x len(b) product and kernel, and every subset's sum is a row of
(subset indicator) @ kernel, weighted by the other side's indicator: no m x m block is copied per subset. The
len(a) x len(b) float64 kernel takes 80 MB for 1,000 draws against a 10,000-face pool.
"""

from __future__ import annotations

import numpy as np


class KidReference:
    def __init__(self, features: np.ndarray, subsets: int, subset_size: int, seed: int) -> None:
        self.b = np.asarray(features, np.float64)
        self.subsets, self.subset_size, self.seed = subsets, subset_size, seed
        self._yy: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # m -> (indicators of b's subsets, their Kyy sums)

    def score(self, features: np.ndarray) -> tuple[float, float]:
        """(mean, std) of the unbiased MMD^2 between `features` and the reference over the seeded subsets."""
        a = np.asarray(features, np.float64)
        if a.shape[1] != self.b.shape[1]:
            raise ValueError(f"feature dims differ: {a.shape[1]} and {self.b.shape[1]}")
        m = min(self.subset_size, len(a), len(self.b))
        if m < 2:
            raise ValueError("KID needs at least 2 feature vectors in each set")
        pick_y, yy_sums = self._reference_side(m)
        rng = np.random.default_rng([self.seed, 0])
        pick_x = _indicator([np.sort(rng.choice(len(a), m, replace=False)) for _ in range(self.subsets)], len(a))
        d = a.shape[1]
        xx_sums = _subset_sums(_kernel(a @ a.T, d), pick_x, pick_x) - pick_x @ _self_kernel(a)
        xy_sums = _subset_sums(_kernel(a @ self.b.T, d), pick_x, pick_y)
        values = (xx_sums + yy_sums) / (m * (m - 1)) - 2 * xy_sums / (m * m)
        return float(values.mean()), float(values.std())

    def _reference_side(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        if m not in self._yy:
            rng = np.random.default_rng([self.seed, 1])
            rows = [np.sort(rng.choice(len(self.b), m, replace=False)) for _ in range(self.subsets)]
            pick, d = _indicator(rows, len(self.b)), self.b.shape[1]
            if len(self.b) ** 2 <= self.subsets * m * m:  # one Gram matrix of the pool costs no more than the subsets'
                sums = _subset_sums(_kernel(self.b @ self.b.T, d), pick, pick)
            else:
                sums = np.array([_kernel(self.b[y] @ self.b[y].T, d).sum() for y in rows])
            self._yy[m] = (pick, sums - pick @ _self_kernel(self.b))
        return self._yy[m]


def kernel_inception_distance(
    features_a: np.ndarray, features_b: np.ndarray, subsets: int, subset_size: int, seed: int
) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over `subsets` seeded subsets."""
    return KidReference(features_b, subsets, subset_size, seed).score(features_a)


def _kernel(gram: np.ndarray, dim: int) -> np.ndarray:
    """(gram / dim + 1)^3, in place: `gram` is a fresh product nobody else holds. t*t*t: numpy's ** 3 calls pow."""
    gram /= dim
    gram += 1
    cube = gram * gram
    cube *= gram
    return cube


def _subset_sums(kernel: np.ndarray, pick_rows: np.ndarray, pick_cols: np.ndarray) -> np.ndarray:
    """Each subset's sum of kernel[rows][:, cols], its rows and columns given as indicator rows (see _indicator):
    1_rows K 1_cols for all subsets in two matrix products, no block copied."""
    return ((pick_rows @ kernel) * pick_cols).sum(axis=1)


def _self_kernel(features: np.ndarray) -> np.ndarray:
    """k(x, x) for every row: summed over a subset's rows, the trace of its kernel block."""
    return _kernel(np.einsum("ij,ij->i", features, features), features.shape[1])


def _indicator(rows: list[np.ndarray], n: int) -> np.ndarray:
    """(subsets, n) float64: row s is 1 at the indices in rows[s], else 0."""
    pick = np.zeros((len(rows), n), np.float64)
    for s, r in enumerate(rows):
        pick[s, r] = 1.0
    return pick
