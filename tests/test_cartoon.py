"""The cartoon face generator: deterministic, per-index, any size, and a zip in the course layout."""

import hashlib
import zipfile

import numpy as np
from PIL import Image

from pipeline.data.cartoon import cartoon_faces, write_faces_zip


def test_faces_depend_only_on_seed_and_index():
    a = cartoon_faces(6, 32, seed=3)
    b = cartoon_faces(3, 32, seed=3, start=3)
    assert a.dtype == np.uint8 and a.shape == (6, 32, 32, 3)
    assert np.array_equal(a[3:], b)
    assert not np.array_equal(a, cartoon_faces(6, 32, seed=4))
    assert len({f.tobytes() for f in a}) == 6  # every face differs


def test_faces_have_face_structure_not_noise():
    # Left-right roughly mirrored (a face), unlike noise; and not flat.
    faces = cartoon_faces(20, 64, seed=0).astype(float)
    mirror_err = np.abs(faces - faces[:, :, ::-1]).mean()
    noise = np.random.default_rng(0).integers(0, 256, faces.shape).astype(float)
    assert mirror_err < 0.5 * np.abs(noise - noise[:, :, ::-1]).mean()
    assert faces.std(axis=(1, 2, 3)).min() > 20


def test_zip_has_course_layout_and_is_reproducible(tmp_path):
    z1 = write_faces_zip(tmp_path / "a.zip", count=5, size=48, seed=1)
    z2 = write_faces_zip(tmp_path / "b.zip", count=5, size=48, seed=1)
    assert hashlib.sha256(z1.read_bytes()).digest() == hashlib.sha256(z2.read_bytes()).digest()
    with zipfile.ZipFile(z1) as zf:
        assert zf.namelist() == [f"faces/{i}.jpg" for i in range(5)]
        with zf.open("faces/4.jpg") as f:
            img = Image.open(f)
            assert img.size == (48, 48) and img.mode == "RGB"
    assert not list(tmp_path.glob(".*tmp"))  # no temporary left behind


def test_make_faces_cli(tmp_path):
    from typer.testing import CliRunner

    from stages.cli import app

    out = tmp_path / "f.zip"
    result = CliRunner().invoke(app, ["make-faces", str(out), "--count", "3", "--size", "16"])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as zf:
        assert len(zf.namelist()) == 3
