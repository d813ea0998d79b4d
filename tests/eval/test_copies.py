"""The copy check: edited training faces (JPEG at quality 75, moved by a pixel) hidden among real faces the
training set never held are flagged, and only they; a query's memory does not grow with the training faces."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from real_faces import real_faces

from pipeline.data.cartoon import cartoon_faces
from pipeline.metrics import copy_index
from pipeline.metrics.copies import CopyCheck, coarse, edit

PICKS = [3, 250, 777, 1024, 1499]  # training faces handed back, edited
SLOTS = [5, 17, 30, 44, 59]  # where they hide among the held-out faces
MOVES = [(1, 0), (0, 1), (-1, 0), (0, -1), (1, 1)]


def mixed_folder_images(train: np.ndarray, held: np.ndarray) -> np.ndarray:
    images = list(held)
    for slot, pick, (dx, dy) in zip(SLOTS, PICKS, MOVES, strict=True):
        images.insert(slot, edit(train[pick], dx, dy, quality=75))
    return np.stack(images)


@pytest.fixture(scope="module")
def train_and_held() -> tuple[np.ndarray, np.ndarray]:
    return real_faces(range(1500)), real_faces(range(4000, 4055))


def test_edited_training_faces_among_held_out_faces_are_flagged_and_only_they(train_and_held) -> None:
    train, held = train_and_held
    check = CopyCheck(train)
    calibration = check.calibrate(count=500, quantile=0.01, seed=0, jpeg_quality=75)
    assert calibration.edited_max < calibration.threshold < calibration.novel_quantile
    images = mixed_folder_images(train, held)
    found = check.check(images, None, calibration.threshold, near=1.0)  # every image's nearest face
    assert found.flagged.tolist() == SLOTS
    assert found.pixel_index[SLOTS].tolist() == PICKS
    others = np.delete(found.pixel_distance, SLOTS)
    assert others.min() > 2 * found.pixel_distance[SLOTS].max()  # not a near miss
    worst = found.worst(7)
    assert [w["image"] for w in worst[:5]] == sorted(SLOTS, key=lambda s: found.pixel_distance[s])
    assert [w["copy"] for w in worst] == [True] * 5 + [False] * 2
    # evaluate's search stops at the calibration's novel quantile: the same flags, and the closest images within it
    near = calibration.near()
    within = check.check(images, None, calibration.threshold, near=near)
    assert within.flagged.tolist() == SLOTS and within.near == near == calibration.novel_quantile
    inside = found.pixel_distance <= near
    assert within.pixel_index[inside].tolist() == found.pixel_index[inside].tolist()
    assert (within.pixel_index[~inside] == -1).all()
    assert within.worst(7) == [w for w in worst if w["distance"] <= near]


def test_a_plain_shift_is_not_enough_without_the_aligned_distance(train_and_held) -> None:
    # why the copy distance aligns: on the coarse grid alone, a moved copy lands as far as a new face may
    train, held = train_and_held
    moved = np.stack([edit(train[p], dx, dy, quality=75) for p, (dx, dy) in zip(PICKS, MOVES, strict=True)])
    coarse_copy = np.sqrt(((coarse(moved) - coarse(train[PICKS])) ** 2).mean(axis=1))
    found = CopyCheck(train).check(moved, None, threshold=1.0)
    assert (found.pixel_distance < coarse_copy).all()


def test_features_find_the_nearest_reference_face() -> None:
    faces = cartoon_faces(count=40, size=16, seed=1)
    rng = np.random.default_rng(0)
    ref_indices = np.array([2, 9, 17, 33])
    ref = rng.normal(size=(4, 6))
    check = CopyCheck(faces, ref, ref_indices)
    queries = ref[[3, 0, 1]] + 0.01
    index, distance = check.nearest_features(queries)
    assert index.tolist() == [33, 2, 9] and np.allclose(distance, 0.01 * np.sqrt(6))
    assert CopyCheck(faces).nearest_features(queries) is None


def _peak_of_nearest(path: Path, count: int) -> int:
    faces = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(count, 16, 16, 3))
    faces[:] = np.repeat(cartoon_faces(count=50, size=16, seed=2), count // 50, axis=0)
    faces.flush()
    check = CopyCheck(np.load(path, mmap_mode="r"))
    check.copy_index()  # built once per clean data (the copy_index stage): its N x DIM floats are not the query's
    queries = cartoon_faces(count=20, size=16, seed=3)
    tracemalloc.start()
    try:
        check.nearest(queries)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def test_a_query_reads_the_faces_it_compares_not_the_training_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(copy_index, "SCAN_ROWS", 256)  # faces bounded at a time, below both sizes
    small = _peak_of_nearest(tmp_path / "small.npy", 2000)
    large = _peak_of_nearest(tmp_path / "large.npy", 20000)
    block = 9 * copy_index.SCAN_ROWS * copy_index.DIM * 8  # one group's bound arrays (9 shifts, float64)
    bounds = 8 * 20 * (20000 - 2000)  # each image's bound on every face: 8 bytes a face, not the face's 768
    assert large < small + 2 * block + 1.5 * bounds
    assert large < 20000 * 16 * 16 * 3 / 3  # far below the faces (15 MB): only the candidates are read


def test_folder_images_of_another_size_are_compared_at_the_training_size() -> None:
    faces = cartoon_faces(count=30, size=16, seed=4)
    check = CopyCheck(faces)
    bigger = np.stack([np.kron(f, np.ones((2, 2, 1), np.uint8)) for f in faces[[7, 21]]])  # 32 px
    found = check.check(bigger, None, threshold=0.05)
    assert found.pixel_index.tolist() == [7, 21] and found.flagged.tolist() == [0, 1]
