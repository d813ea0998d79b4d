"""The clean stage's building blocks: the row-streaming .npy writer and the preview grid."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from pipeline.core.image_grid import grid_image, save_grid
from pipeline.core.npy_stream import NpyRowWriter


def test_streamed_npy_loads_as_the_same_array_with_its_hash(tmp_path):
    rows = np.random.default_rng(0).integers(0, 256, (7, 5, 4, 3), dtype=np.uint8)
    with NpyRowWriter(tmp_path / "a.npy", row_shape=(5, 4, 3)) as out:
        for r in rows:
            out.append(r)
    back = np.load(tmp_path / "a.npy")
    assert back.shape == rows.shape and back.dtype == np.uint8 and (back == rows).all()
    assert out.count == 7 and out.sha256 == hashlib.sha256(rows.tobytes()).hexdigest()
    np.save(tmp_path / "b.npy", rows)
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "b.npy").read_bytes()  # exactly np.save's bytes


def test_streamed_npy_with_no_rows_and_a_wrong_row(tmp_path):
    with NpyRowWriter(tmp_path / "e.npy", row_shape=(2, 2, 3)) as out:
        with pytest.raises(ValueError, match="does not match"):
            out.append(np.zeros((2, 2, 3), np.float32))
    assert np.load(tmp_path / "e.npy").shape == (0, 2, 2, 3)


def test_grid_places_each_image_in_its_cell(tmp_path):
    images = np.stack([np.full((3, 4, 3), 10 * (i + 1), np.uint8) for i in range(5)])
    grid = np.asarray(grid_image(images, ncol=2, pad=1))
    assert grid.shape == (1 + 3 * 4, 1 + 2 * 5, 3)  # 3 rows of 2 cells, 1-px borders
    for i in range(5):
        r, c = divmod(i, 2)
        assert (grid[1 + r * 4 : 4 + r * 4, 1 + c * 5 : 5 + c * 5] == 10 * (i + 1)).all()
    assert (grid[9:12, 6:10] == 0).all()  # the missing sixth cell stays black

    path = save_grid(images, tmp_path / "plots" / "g.png", ncol=2, pad=1)
    assert (np.asarray(Image.open(path)) == grid).all()
    assert [p.name for p in path.parent.iterdir()] == ["g.png"]


def test_grid_refuses_wrong_input():
    with pytest.raises(ValueError, match="uint8"):
        grid_image(np.zeros((2, 4, 4, 3), np.float32), ncol=2)
    with pytest.raises(ValueError, match="N >= 1"):
        grid_image(np.zeros((0, 4, 4, 3), np.uint8), ncol=2)
