"""Precision, recall, density and coverage against the reference implementation (the `prdc` package of Naeem et
al., a dev dependency) on the same features, hand-made cases whose answer is known, and bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import prdc as reference_prdc
import pytest

import pipeline.metrics.prdc as ours
from pipeline.metrics.prdc import PrdcReference, kth_neighbour_radii, prdc

KEYS = ("precision", "recall", "density", "coverage")


def _theirs(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    return {key: float(v) for key, v in reference_prdc.compute_prdc(real, fake, nearest_k=k).items()}


@pytest.mark.parametrize(
    ("n_real", "n_fake", "dim", "k", "shift"),
    [(300, 200, 64, 3, 0.3), (200, 300, 2048, 3, 0.3), (150, 150, 16, 5, 1.0), (120, 80, 8, 1, 0.5)],
)
def test_equals_the_reference_implementation(n_real: int, n_fake: int, dim: int, k: int, shift: float) -> None:
    rng = np.random.default_rng(dim + k)
    basis = rng.normal(size=(12, dim)) if dim > 64 else np.eye(dim)  # Inception-like: few directions carry the data
    real = rng.normal(size=(n_real, len(basis))) @ basis
    fake = (rng.normal(size=(n_fake, len(basis))) * 1.2 + shift) @ basis
    theirs, mine = _theirs(real, fake, k), prdc(real, fake, k)
    for key in KEYS:
        assert mine[key] == pytest.approx(theirs[key], abs=1e-9), key
    assert 0 < mine["precision"] < 1 or 0 < mine["recall"] < 1  # a case where the numbers say something


def test_blocks_do_not_change_the_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(257, 32)), rng.normal(size=(131, 32)) + 0.2
    whole = prdc(real, fake, 3)
    monkeypatch.setattr(ours, "BLOCK_BYTES", 8 * 300 * 7)  # 7 rows of 300 distances at a time
    assert ours.row_block(300) == 7
    assert prdc(real, fake, 3) == whole


def test_reference_is_reused_across_draws() -> None:
    rng = np.random.default_rng(2)
    real = rng.normal(size=(200, 16))
    ref = PrdcReference(real, 3)
    draws = [rng.normal(size=(100, 16)) + s for s in (0.0, 0.5)]
    assert [ref.score(d) for d in draws] == [prdc(real, d, 3) for d in draws]


def test_identical_sets_give_precision_and_recall_one() -> None:
    x = np.random.default_rng(3).normal(size=(200, 32))
    got = prdc(x, x.copy(), 3)
    assert got["precision"] == got["recall"] == got["coverage"] == 1.0
    assert got == pytest.approx(_theirs(x, x.copy(), 3), abs=1e-9)


def test_five_points_repeated_have_recall_near_zero_against_a_spread_reference() -> None:
    rng = np.random.default_rng(4)
    reference = rng.normal(size=(1000, 32))
    five = np.repeat(reference[rng.choice(1000, 5, replace=False)] + 0.01, 200, axis=0)  # 1000 samples, 5 faces
    got = prdc(reference, five, 3)
    assert got["recall"] < 0.01 and got["coverage"] < 0.02
    assert got["precision"] == 1.0  # each of them lies on the reference manifold: fidelity is not the problem
    spread = prdc(reference, rng.normal(size=(1000, 32)), 3)
    assert spread["recall"] > 0.5 and spread["coverage"] > 0.5


def test_k_must_be_smaller_than_the_set() -> None:
    with pytest.raises(ValueError, match="k-NN radii need"):
        kth_neighbour_radii(np.zeros((3, 2)), 3)


def test_radii_memory_stays_bounded_by_the_block(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(5).normal(size=(3000, 8))
    full_matrix = 3000 * 3000 * 8
    monkeypatch.setattr(ours, "BLOCK_BYTES", 1 << 20)
    tracemalloc.start()
    try:
        radii = kth_neighbour_radii(x, 3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < full_matrix / 8  # a few blocks of 1 MiB, never the 72 MB matrix
    d = np.sqrt(((x[:50, None] - x[None]) ** 2).sum(-1))
    assert np.allclose(radii[:50], np.sort(d, axis=1)[:, 3])
