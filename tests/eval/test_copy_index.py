"""The copy index answers exactly what comparing every training face answers: the same nearest face (lowest index
among equal distances) at the same copy distance, bit for bit, so the same images are flagged at any threshold;
its range search (`within`, what evaluate asks) the same for every image whose nearest face lies within the radius
and "none" for the others; and it compares only a part of the faces."""

from __future__ import annotations

import numpy as np
import pytest
from real_faces import real_faces

from pipeline.data.cartoon import cartoon_faces
from pipeline.metrics.copies import edit
from pipeline.metrics.copy_index import CopyIndex, exhaustive_nearest


def edited_copies(faces: np.ndarray, picks: list[int]) -> np.ndarray:
    moves = [(1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (0, 0)]
    return np.stack([edit(faces[p], *moves[i % len(moves)], quality=75) for i, p in enumerate(picks)])


def colour_shifted(faces: np.ndarray, shift: int) -> np.ndarray:
    return np.clip(faces.astype(np.int16) + shift, 0, 255).astype(np.uint8)


def assert_same_as_exhaustive(index: CopyIndex, faces: np.ndarray, images: np.ndarray, exclude=None) -> None:
    got_i, got_d = index.nearest(images, exclude=exclude)
    want_i, want_d = exhaustive_nearest(faces, images, exclude=exclude)
    assert got_i.tolist() == want_i.tolist()
    assert got_d.tolist() == want_d.tolist()  # the same bits: the same function on the same pair
    for threshold in (0.02, 0.046, 0.08, np.median(want_d)):
        assert np.flatnonzero(got_d < threshold).tolist() == np.flatnonzero(want_d < threshold).tolist()
    assert_within_same_as_exhaustive(index, images, want_i, want_d, exclude)


def assert_within_same_as_exhaustive(index: CopyIndex, images, want_i, want_d, exclude=None) -> None:
    """`within(radius)`: the exhaustive answer where it lies within the radius (inclusive), -1 and inf elsewhere."""
    radii = sorted({0.02, 0.046, 0.08, float(np.median(want_d)), float(want_d.min()), float(want_d.max())})
    for radius in radii:
        got_i, got_d = index.within(images, radius, exclude=exclude)
        inside = want_d <= radius
        assert got_i[inside].tolist() == want_i[inside].tolist()
        assert got_d[inside].tolist() == want_d[inside].tolist()  # the same bits
        assert (got_i[~inside] == -1).all() and np.isinf(got_d[~inside]).all()
        for threshold in (0.02, 0.046, radius):
            if threshold <= radius:
                assert np.flatnonzero(got_d < threshold).tolist() == np.flatnonzero(want_d < threshold).tolist()


@pytest.mark.parametrize("size", [16, 20])  # 20: cells of unequal size
def test_index_equals_exhaustive_on_generated_faces(size: int) -> None:
    faces = cartoon_faces(count=400, size=size, seed=3)
    index = CopyIndex.build(faces, seed=0)
    queries = np.concatenate([
        edited_copies(faces, [0, 57, 199, 399]), colour_shifted(faces[[10, 20]], 40),
        cartoon_faces(count=12, size=size, seed=99), faces[[5, 6]][:, ::-1],
    ])  # fmt: skip
    assert_same_as_exhaustive(index, faces, queries)
    held = np.array([3, 140, 301])  # leave-one-out, as the calibration asks
    assert_same_as_exhaustive(index, faces, faces[held], exclude=held)


def test_ties_go_to_the_lowest_index_as_in_the_exhaustive_search() -> None:
    faces = cartoon_faces(count=120, size=16, seed=4)
    faces = np.concatenate([faces, faces[[7, 7, 30]]])  # exact duplicates at 120, 121 (of 7) and 122 (of 30)
    index = CopyIndex.build(faces, seed=1)
    got_i, got_d = index.nearest(faces[[121, 122]])
    assert got_i.tolist() == [7, 30] and got_d.tolist() == [0.0, 0.0]
    assert_same_as_exhaustive(index, faces, faces[[7, 30, 121]], exclude=np.array([7, 30, 121]))


def test_saved_index_answers_as_the_built_one(tmp_path) -> None:
    faces = cartoon_faces(count=200, size=16, seed=5)
    built = CopyIndex.build(faces, seed=0)
    built.save(tmp_path, {"data_sha256": "abc"})
    loaded = CopyIndex.load(tmp_path, faces)
    assert loaded.matches(faces) and loaded.meta["data_sha256"] == "abc"
    assert not loaded.matches(faces[:199])
    queries = edited_copies(faces, [1, 2, 3])
    a, b = built.nearest(queries), loaded.nearest(queries)
    assert a[0].tolist() == b[0].tolist() and a[1].tolist() == b[1].tolist()


@pytest.fixture(scope="module")
def faces_5k() -> np.ndarray:
    return real_faces(range(5000))  # skips when the shared zip is absent


# The exhaustive answer these compare with costs about 1.8 s per image on 5,000 faces: a few images of each kind.
@pytest.mark.slow
def test_index_equals_exhaustive_on_the_5k_real_faces(faces_5k) -> None:
    faces = faces_5k
    index = CopyIndex.build(faces, seed=0)
    rng = np.random.default_rng(0)
    picks = sorted(rng.choice(5000, 6, replace=False).tolist())
    queries = np.concatenate([
        edited_copies(faces, picks),                  # copies: flagged, nearest = their original
        colour_shifted(faces[picks[:2]], 25),         # edited harder
        faces[picks[2:4], :, ::-1],                   # mirrored: new faces, close to the data
        cartoon_faces(count=2, size=64, seed=7),      # far from every face
    ])  # fmt: skip
    assert_same_as_exhaustive(index, faces, queries)
    held = np.array(picks[:4])  # a calibration's held-out faces: each may not match itself
    assert_same_as_exhaustive(index, faces, faces[held], exclude=held)
    stats = index.stats.as_dict(len(faces))
    assert stats["exact_per_query"] < 0.05 * len(faces)  # the exact distance on a small part of the faces


def test_fewer_faces_than_components() -> None:
    faces = cartoon_faces(count=10, size=16, seed=6)  # the index keeps at most 10 components here
    index = CopyIndex.build(faces, seed=0)
    assert_same_as_exhaustive(index, faces, edited_copies(faces, [0, 9]))


@pytest.mark.slow
def test_a_range_query_touches_a_small_part_of_the_5k_real_faces(faces_5k) -> None:
    faces = faces_5k
    index = CopyIndex.build(faces[:4500], seed=0)
    novel = faces[4500:4512]  # faces the index never saw: what a good generator draws
    copies = edited_copies(faces, list(range(0, 4500, 450)))
    radius = 0.046  # the threshold calibrated on these faces (pipeline/metrics/copies.py)
    index.stats = type(index.stats)()
    found_i, found_d = index.within(np.concatenate([novel, copies]), radius)
    stats = index.stats.as_dict(4500)
    assert stats["tree_per_query"] < 0.02 * 4500 and stats["exact_per_query"] < 5
    assert found_i[len(novel) :].tolist() == list(range(0, 4500, 450))  # every edited copy found, with its original
    want_i, want_d = exhaustive_nearest(faces[:4500], novel)
    assert found_i[: len(novel)].tolist() == np.where(want_d <= radius, want_i, -1).tolist()
