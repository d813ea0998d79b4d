"""Kernel Inception Distance: the unbiased MMD^2 with the cubic polynomial kernel, over seeded subsets.

Usage:
    from pipeline.kid import kernel_inception_distance
    mean, std = kernel_inception_distance(features_a, features_b, subsets=100, subset_size=1000, seed=0)

k(x, y) = (x.y / d + 1)^3 (Bińkowski et al., 2018). Each subset draws min(subset_size, len(a), len(b)) rows from
each set without replacement from a generator seeded with `seed`, so the same features give the same numbers.
The estimator is unbiased: two draws from one distribution give a mean near 0, and it can be slightly negative.
"""

from __future__ import annotations

import numpy as np


def kernel_inception_distance(
    features_a: np.ndarray, features_b: np.ndarray, subsets: int, subset_size: int, seed: int
) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over `subsets` seeded subsets."""
    a = np.asarray(features_a, np.float64)
    b = np.asarray(features_b, np.float64)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dims differ: {a.shape[1]} and {b.shape[1]}")
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError("KID needs at least 2 feature vectors in each set")
    rng = np.random.default_rng(seed)
    values = np.empty(subsets, np.float64)
    for s in range(subsets):
        x = a[np.sort(rng.choice(len(a), m, replace=False))]
        y = b[np.sort(rng.choice(len(b), m, replace=False))]
        values[s] = _mmd2_unbiased(x, y)
    return float(values.mean()), float(values.std())


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    m = len(x)
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    off_diag = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(off_diag - 2 * kxy.sum() / (m * m))
