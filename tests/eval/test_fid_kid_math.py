"""FID and KID arithmetic on random features: self-distance, agreement with pytorch-fid, singular covariances."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pipeline.metrics.fid import FeatureStats, fid_of_features, frechet_distance
from pipeline.metrics.kid import KidReference, kernel_inception_distance


def _gaussian(n: int, dim: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    return rng.normal(size=(n, dim)) @ mix + shift


def test_fid_of_a_set_against_itself_is_zero() -> None:
    f = _gaussian(500, 64, seed=0)
    s = FeatureStats.of(f)
    assert frechet_distance(s.mean, s.cov, s.mean, s.cov) == pytest.approx(0, abs=1e-9)


def _sqrtm_accepting_disp(sqrtm):
    """scipy.linalg.sqrtm as pytorch-fid 0.3.0 calls it, `sqrtm(A, disp=False)` -> (root, error estimate).

    SciPy 1.18 removed `disp` (a TypeError inside pytorch-fid's calculate_frechet_distance). This gives the old
    contract on top of the new sqrtm, so the rest of pytorch-fid's function (its eps retry, the imaginary-part
    check, the trace) still runs as published; the error estimate is SciPy's old formula, ||X @ X - A||_F / ||A||_F.
    """

    def compat(a, disp=True, blocksize=64):
        root = sqrtm(a)
        if disp:
            return root
        return root, np.linalg.norm(root @ root - a, "fro") / np.linalg.norm(a, "fro")

    return compat


def test_fid_agrees_with_pytorch_fid_on_well_conditioned_inputs(monkeypatch) -> None:
    import inspect

    import scipy.linalg
    from pytorch_fid.fid_score import calculate_frechet_distance

    if "disp" not in inspect.signature(scipy.linalg.sqrtm).parameters:
        monkeypatch.setattr(scipy.linalg, "sqrtm", _sqrtm_accepting_disp(scipy.linalg.sqrtm))
    a, b = _gaussian(2000, 64, seed=1), _gaussian(2000, 64, seed=2, shift=0.3)
    sa, sb = FeatureStats.of(a), FeatureStats.of(b)
    with warnings.catch_warnings():  # SciPy < 1.18 deprecates sqrtm's `disp`, which pytorch-fid passes
        warnings.simplefilter("ignore")
        theirs = calculate_frechet_distance(sa.mean, sa.cov, sb.mean, sb.cov)
    ours = frechet_distance(sa.mean, sa.cov, sb.mean, sb.cov)
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert fid_of_features(a, sb.mean, sb.cov) == pytest.approx(theirs, rel=1e-6)


def test_statistics_match_numpy_and_do_not_depend_on_batching() -> None:
    f = _gaussian(300, 32, seed=3)
    acc = FeatureStats.empty(32)
    for start in range(0, 300, 7):
        acc.add(f[start : start + 7])
    np.testing.assert_allclose(acc.mean, f.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(acc.cov, np.cov(f, rowvar=False), rtol=1e-10, atol=1e-12)


def test_singular_covariance_gives_a_finite_distance_and_low_rank_route_agrees() -> None:
    # 40 images in 256 dims: rank-39 covariances, as 1,000 images against 2,048 Inception dims.
    a, b = _gaussian(40, 256, seed=4), _gaussian(400, 256, seed=5, shift=0.1)
    sa, sb = FeatureStats.of(a), FeatureStats.of(b)
    full = frechet_distance(sa.mean, sa.cov, sb.mean, sb.cov)
    assert np.isfinite(full) and full > 0
    # The full route sums square roots of ~217 rounding-noise eigenvalues; the low-rank one has none.
    assert fid_of_features(a, sb.mean, sb.cov) == pytest.approx(full, rel=1e-7)
    assert frechet_distance(sa.mean, sa.cov, sa.mean, sa.cov) == pytest.approx(0, abs=1e-7 * np.trace(sa.cov))


def test_kid_is_near_zero_for_two_draws_of_one_gaussian_and_positive_otherwise() -> None:
    both = _gaussian(800, 32, seed=6)
    a, b = both[:400], both[400:]
    same_mean, same_std = kernel_inception_distance(a, b, subsets=50, subset_size=200, seed=0)
    shifted_mean, _ = kernel_inception_distance(a, b + 0.5, subsets=50, subset_size=200, seed=0)
    assert abs(same_mean) < 3 * same_std  # unbiased: centred on 0, within its own subset spread
    assert shifted_mean > 10 * same_std
    assert kernel_inception_distance(a, b, 50, 200, 0) == (same_mean, same_std)  # seeded: repeatable


def test_kid_fast_path_equals_the_textbook_estimator() -> None:
    a, b = _gaussian(30, 8, seed=8), _gaussian(50, 8, seed=9, shift=0.2)
    m, subsets = 20, 4
    rx, ry = np.random.default_rng([3, 0]), np.random.default_rng([3, 1])
    ys = [np.sort(ry.choice(50, m, replace=False)) for _ in range(subsets)]
    expected = []
    for s in range(subsets):
        x, y = a[np.sort(rx.choice(30, m, replace=False))], b[ys[s]]
        k = lambda p, q: (p @ q.T / 8 + 1) ** 3  # noqa: E731
        kxx, kyy = k(x, x), k(y, y)
        expected.append(
            (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * k(x, y).sum() / m**2
        )
    ref = KidReference(b, subsets=subsets, subset_size=m, seed=3)
    assert ref.score(a) == pytest.approx((np.mean(expected), np.std(expected)), rel=1e-10)
    assert ref.score(a) == kernel_inception_distance(a, b, subsets, m, 3)  # cached reference side: same numbers
