"""Fréchet Inception Distance in float64: feature statistics and a distance robust to singular covariances.

Usage:
    from pipeline.metrics.fid import FeatureStats, frechet_distance, psd_sqrt
    stats = FeatureStats.of(features)                 # or: acc = FeatureStats.empty(2048); acc.add(batch) ...
    fid = frechet_distance(stats.mean, stats.cov, ref_mean, ref_cov)
    fid = fid_of_features(features, ref_mean, ref_cov)  # same value; fast when there are fewer images than dims

FID = |mu1 - mu2|^2 + tr(C1) + tr(C2) - 2 tr((C1 C2)^(1/2)). The trace of the matrix square root is computed as
the sum of square roots of the eigenvalues of the symmetric matrix C2^(1/2) C1 C2^(1/2), which has the same
eigenvalues as C1 C2. Both square roots come from symmetric eigendecompositions with tiny negative eigenvalues
clipped to 0, so a rank-deficient covariance (1,000 images, 2,048 dimensions) gives a finite, real result without
the eps-on-the-diagonal retry that pytorch-fid's scipy.linalg.sqrtm path needs.

With n < D feature vectors, C1 = A'A/(n-1) for the centred features A (n x D), and C1 C2 has the same non-zero
eigenvalues as the n x n symmetric matrix A C2 A'/(n-1): fid_of_features uses that, an n x n instead of two D x D
eigendecompositions (1,000 images against 2,048 dims: a few times faster, same value to rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FeatureStats:
    """Running sum and sum of outer products in float64, so batching never changes the statistics."""

    count: int
    total: np.ndarray  # (D,)
    outer: np.ndarray  # (D, D)

    @classmethod
    def empty(cls, dim: int) -> FeatureStats:
        return cls(0, np.zeros(dim, np.float64), np.zeros((dim, dim), np.float64))

    @classmethod
    def of(cls, features: np.ndarray) -> FeatureStats:
        acc = cls.empty(features.shape[1])
        acc.add(features)
        return acc

    def add(self, features: np.ndarray) -> None:
        f = np.asarray(features, dtype=np.float64)
        self.count += len(f)
        self.total += f.sum(axis=0)
        self.outer += f.T @ f

    @property
    def mean(self) -> np.ndarray:
        return self.total / self.count

    @property
    def cov(self) -> np.ndarray:
        """Unbiased covariance, as numpy.cov(rowvar=False)."""
        if self.count < 2:
            raise ValueError("covariance needs at least 2 feature vectors")
        mu = self.mean
        cov = (self.outer - self.count * np.outer(mu, mu)) / (self.count - 1)
        return (cov + cov.T) / 2


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (negative rounding noise clipped)."""
    m = np.asarray(matrix, dtype=np.float64)
    values, vectors = np.linalg.eigh((m + m.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(
    mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray, sqrt_cov2: np.ndarray | None = None
) -> float:
    """Fréchet distance between N(mu1, cov1) and N(mu2, cov2), in float64; never negative."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape:
        raise ValueError(f"shape mismatch: {mu1.shape}/{cov1.shape} against {mu2.shape}/{cov2.shape}")
    root2 = psd_sqrt(cov2) if sqrt_cov2 is None else sqrt_cov2
    inner = root2 @ cov1 @ root2
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = mu1 - mu2
    value = diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * tr_covmean
    return float(max(value, 0.0))


def fid_of_features(features: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """FID between the Gaussian fitted to `features` (N, D) and N(mu2, cov2); low-rank route when N <= D."""
    f = np.asarray(features, np.float64)
    n, dim = f.shape
    stats = FeatureStats.of(f)
    if n > dim:
        return frechet_distance(stats.mean, stats.cov, mu2, cov2)
    if n < 2:
        raise ValueError("FID needs at least 2 feature vectors")
    cov2 = np.asarray(cov2, np.float64)
    centred = f - stats.mean
    small = centred @ cov2 @ centred.T / (n - 1)
    eig = np.linalg.eigvalsh((small + small.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = stats.mean - np.asarray(mu2, np.float64)
    value = diff @ diff + np.trace(stats.cov) + np.trace(cov2) - 2 * tr_covmean
    return float(max(value, 0.0))
