"""Build a clean set at the course's size (71,314 faces, 64x64) from the shared 5k zip: distinct variants made by
flips, crops and colour shifts. Never committed: it is written into a cache folder (default ~/.cache/animegan-bench).

Usage:
    .venv/bin/python -m bench.course.faces                       # -> ~/.cache/animegan-bench/faces_71314_64.npy
    .venv/bin/python -m bench.course.faces --count 20000 --out /tmp/faces.npy
    from bench.course.faces import course_faces; path = course_faces(count=71314)   # built once, then reused

Face i is variant i // 5000 of real face i % 5000: variant 0 is the face as the clean stage makes it (Lanczos to
64 px); the others are, each drawn from a generator seeded with i, mirrored or not, cropped to a random square of
84-95 px of the 96 px original at a random place, and shifted in colour (each channel by up to +-12 levels), then
resized to 64 px. Variants of one face are as close to each other as a crop and a colour shift make them: like
the near-duplicates the course data holds, and close enough to test that a copy index stays exact and fast.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import CACHE, SHARED_ZIP, require

COURSE_COUNT = 71314


def originals(zip_path: Path) -> list[Image.Image]:
    with zipfile.ZipFile(zip_path) as z:
        names = sorted((n for n in z.namelist() if n.endswith(".jpg")), key=lambda n: int(Path(n).stem))
        out = []
        for n in names:
            with Image.open(io.BytesIO(z.read(n))) as im:
                out.append(im.convert("RGB"))
    return out


def variant(face: Image.Image, i: int, base_count: int, size: int) -> np.ndarray:
    if i < base_count:
        return np.asarray(face.resize((size, size), Image.Resampling.LANCZOS))
    rng = np.random.default_rng(i)
    w, h = face.size
    side = int(rng.integers(int(0.875 * min(w, h)), min(w, h)))
    x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    im = face.crop((x, y, x + side, y + side))
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    arr = np.asarray(im.resize((size, size), Image.Resampling.LANCZOS)).astype(np.int16)
    arr = arr + rng.integers(-12, 13, size=3).astype(np.int16)
    return np.clip(arr, 0, 255).astype(np.uint8)


def course_faces(count: int = COURSE_COUNT, out: Path | None = None, zip_path: Path | None = None,
                 size: int = 64) -> Path:  # fmt: skip
    """Path of a (count, size, size, 3) uint8 .npy of variants, built once (atomically) and then reused."""
    out = Path(out) if out else CACHE / f"faces_{count}_{size}.npy"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    base = originals(require(zip_path or SHARED_ZIP))
    tmp = out.with_name(out.name + ".tmp.npy")
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(count, size, size, 3))
    for i in range(count):
        arr[i] = variant(base[i % len(base)], i, len(base), size)
    arr.flush()
    del arr
    tmp.replace(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=COURSE_COUNT)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--zip", type=Path, default=None)
    args = ap.parse_args()
    print(course_faces(args.count, args.out, args.zip))


if __name__ == "__main__":
    main()
