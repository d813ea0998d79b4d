"""faces.npy does not change under a user's feet: clean's output on the shared 5k zip has a recorded sha256.

Every run signature and FID reference holds the hash of faces.npy, so a Pillow or libjpeg-turbo that decodes or
resizes the course's JPEGs differently would make a resumed run or an evaluate refuse ("faces.sha256" changed).
This test catches that here, for whatever Pillow the suite runs on (the lock's; bench.install.colab_case and
bench.install.pillow_hash check the same recorded hash, bench.common's, under Colab's Pillow 11.3 and others).
Skipped where ../shared/data/anime-faces-5k.zip is absent (a clone without shared/).
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from bench.common import SHARED_FACES_SHA256, SHARED_ZIP_SHA256
from pipeline.core.config import load_params
from pipeline.data.clean import clean_faces, decoder_versions

REPO = Path(__file__).resolve().parents[2]
ZIP_NAME = "anime-faces-5k.zip"


def _shared_zip() -> Path:
    for folder in REPO.parents:
        candidate = folder / "shared" / "data" / ZIP_NAME
        if candidate.is_file():
            return candidate
    pytest.skip(f"{ZIP_NAME} not found in a shared/data beside the repository (a clone without shared/)")


@pytest.mark.slow
def test_clean_of_the_shared_faces_has_the_recorded_hash(tmp_path: Path) -> None:
    archive = _shared_zip()
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert digest == SHARED_ZIP_SHA256, f"{archive} is not the recorded zip"
    with zipfile.ZipFile(archive) as z:
        z.extractall(tmp_path / "raw")
    data = load_params(REPO / "params.yaml").data
    out = tmp_path / "clean"
    out.mkdir()
    result = clean_faces(
        tmp_path / "raw" / "faces", out, image_size=data.image_size, min_side=data.min_side,
        max_pixels=data.max_pixels, resample=data.resample,
    )
    assert (result.files, result.kept) == (5000, 5000)
    assert result.sha256 == hashlib.sha256((out / "faces.npy").read_bytes()[-5000 * 64 * 64 * 3 :]).hexdigest()
    assert result.sha256 == SHARED_FACES_SHA256, (
        f"faces.npy decodes differently with {decoder_versions()}: every checkpoint and FID reference made "
        "with the recorded decoder would be refused"
    )
