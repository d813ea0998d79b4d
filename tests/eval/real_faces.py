"""Real anime faces for the eval tests, from the shared 5k zip (course layout faces/0.jpg ..), resized to 64x64
as the clean stage does. CI keeps the zip at ../shared/data beside the repository; a worktree one level deeper
finds it further up. Tests that need it skip when it is absent."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
ZIP_NAME = "anime-faces-5k.zip"


def faces_zip() -> Path | None:
    for folder in REPO.parents:
        candidate = folder / "shared" / "data" / ZIP_NAME
        if candidate.is_file():
            return candidate
    return None


def real_faces(indices: range | list[int], size: int = 64) -> np.ndarray:
    """uint8 (len(indices), size, size, 3): faces/<i>.jpg for each i, resized with Lanczos like the clean stage."""
    path = faces_zip()
    if path is None:
        pytest.skip(f"{ZIP_NAME} not found in ../shared/data")
    with zipfile.ZipFile(path) as z:
        names = {Path(n).stem: n for n in z.namelist() if n.endswith(".jpg")}
        out = []
        for i in indices:
            with Image.open(io.BytesIO(z.read(names[str(i)]))) as im:
                out.append(np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)))
    return np.stack(out)
