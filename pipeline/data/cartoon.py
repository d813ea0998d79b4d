"""Deterministic cartoon anime-like faces, for tests and the offline demo.

Usage:
    from pipeline.data.cartoon import cartoon_face, cartoon_faces, write_faces_zip
    img = cartoon_face(seed=0, index=7, size=64)        # PIL RGB image
    arr = cartoon_faces(count=100, size=64, seed=0)      # uint8 (100, 64, 64, 3)
    write_faces_zip("faces.zip", count=1000, size=96)    # faces/0.jpg .. faces/999.jpg, like the course zip

    animegan make-faces faces.zip --count 1000 --size 96

Face i depends only on (seed, i): hair (back and bangs), skin, eyes with iris, pupil and highlight, brows, mouth
and blush, each with random colours, proportions and a small pose jitter. Faces are drawn at 4x and downsampled with
Lanczos, so edges are antialiased at every size. They are not Crypko faces; they give tests and the demo images with
a face's structure (which patch-shuffling or rotation destroys) without any download.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipeline.core.atomic import atomic_path

_CANVAS = 256  # drawing resolution; the output is downsampled from it

_HAIR = [(40, 30, 30), (230, 200, 120), (200, 60, 60), (70, 90, 200), (240, 150, 190), (90, 60, 40),
         (200, 200, 210), (60, 150, 90), (120, 70, 160), (250, 120, 40)]
_IRIS = [(60, 120, 220), (200, 50, 60), (60, 170, 90), (150, 80, 200), (220, 160, 40), (90, 60, 40)]
_SKIN = [(255, 228, 210), (250, 220, 200), (255, 235, 220), (240, 205, 180)]


@dataclass(frozen=True)
class _Face:
    """Where the head lies on the canvas (centre, half width, half height) and its colours."""

    cx: float
    cy: float
    fw: float
    fh: float
    hair: tuple[int, int, int]
    skin: tuple[int, int, int]
    iris: tuple[int, int, int]


@dataclass(frozen=True)
class _Eyes:
    """The eyes' centre height, each eye's offset from the centre line, half width and half height."""

    y: float
    dx: float
    w: float
    h: float


def cartoon_face(seed: int, index: int, size: int) -> Image.Image:
    """Face number `index` of the family `seed`, as an RGB image of size x size."""
    rng = np.random.default_rng([seed, index])
    c = _CANVAS
    bg = tuple(int(v) for v in rng.integers(150, 256, size=3))
    img = Image.new("RGB", (c, c), bg)
    d = ImageDraw.Draw(img)
    # Every random draw happens in the same order as ever: face i of seed s is the same image in every version.
    face = _pick_face(rng)
    _draw_head(d, rng, face)
    eyes = _draw_eyes(d, rng, face)
    _draw_mouth(d, rng, face, eyes)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def _pick_face(rng: np.random.Generator) -> _Face:
    c = _CANVAS
    hair = _jitter(rng, _HAIR[rng.integers(len(_HAIR))])
    skin = _SKIN[rng.integers(len(_SKIN))]
    iris = _jitter(rng, _IRIS[rng.integers(len(_IRIS))])
    cx = c / 2 + rng.uniform(-0.05, 0.05) * c
    cy = c * 0.56 + rng.uniform(-0.04, 0.04) * c
    fw = c * rng.uniform(0.27, 0.33)  # half width of the face
    fh = fw * rng.uniform(1.05, 1.2)  # half height
    return _Face(cx, cy, fw, fh, hair, skin, iris)


def _draw_head(d: ImageDraw.ImageDraw, rng: np.random.Generator, f: _Face) -> None:
    cx, cy, fw, fh, hair, skin = f.cx, f.cy, f.fw, f.fh, f.hair, f.skin
    # Hair behind the head, long or short.
    hair_len = rng.uniform(0.6, 1.3)
    d.ellipse([cx - fw * 1.35, cy - fh * 1.45, cx + fw * 1.35, cy + fh * hair_len], fill=hair)
    # Face: rounded top, pointed chin.
    d.ellipse([cx - fw, cy - fh, cx + fw, cy + fh * 0.55], fill=skin)
    d.polygon([(cx - fw * 0.97, cy), (cx + fw * 0.97, cy), (cx, cy + fh * 1.0)], fill=skin)
    # Bangs: a cap plus a row of spikes over the forehead.
    d.chord([cx - fw * 1.15, cy - fh * 1.35, cx + fw * 1.15, cy - fh * 0.05], 180, 360, fill=hair)
    n_spikes = int(rng.integers(4, 7))
    xs = np.linspace(cx - fw * 1.05, cx + fw * 1.05, n_spikes + 1)
    for x0, x1 in zip(xs[:-1], xs[1:], strict=True):
        tip_y = cy - fh * rng.uniform(0.05, 0.35)
        tip_x = (x0 + x1) / 2 + rng.uniform(-0.3, 0.3) * (x1 - x0)
        d.polygon([(x0, cy - fh * 0.7), (x1, cy - fh * 0.7), (tip_x, tip_y)], fill=hair)


def _draw_eyes(d: ImageDraw.ImageDraw, rng: np.random.Generator, f: _Face) -> _Eyes:
    """Eyes: lash line, sclera, iris, pupil, highlight; and the brows."""
    c, cx, iris = _CANVAS, f.cx, f.iris
    ey = f.cy + f.fh * rng.uniform(0.05, 0.15)
    ex = f.fw * rng.uniform(0.38, 0.48)
    ew = f.fw * rng.uniform(0.22, 0.28)
    eh = ew * rng.uniform(1.1, 1.5)
    dark = (35, 25, 30)
    for side in (-1, 1):
        x = cx + side * ex
        d.ellipse([x - ew, ey - eh, x + ew, ey + eh], fill=(255, 255, 255))
        iw = ew * 0.8
        d.ellipse([x - iw, ey - eh * 0.75, x + iw, ey + eh * 0.95], fill=iris)
        pw = iw * 0.45
        d.ellipse([x - pw, ey - eh * 0.25, x + pw, ey + eh * 0.45], fill=_shade(iris, 0.35))
        hw = iw * 0.35
        hx, hy = x - iw * 0.35, ey - eh * 0.35
        d.ellipse([hx - hw, hy - hw, hx + hw, hy + hw], fill=(255, 255, 255))
        d.arc([x - ew * 1.15, ey - eh * 1.1, x + ew * 1.15, ey + eh * 0.9], 200, 340, fill=dark,
              width=max(2, int(c * 0.018)))
        by = ey - eh * rng.uniform(1.35, 1.6)
        d.line([(x - ew, by), (x + ew, by)], fill=_shade(f.hair, 0.6), width=max(2, int(c * 0.01)))
    return _Eyes(ey, ex, ew, eh)


def _draw_mouth(d: ImageDraw.ImageDraw, rng: np.random.Generator, f: _Face, e: _Eyes) -> None:
    """Blush, nose, mouth."""
    cx, ey, ex, ew, eh = f.cx, e.y, e.dx, e.w, e.h
    if rng.random() < 0.6:
        for side in (-1, 1):
            x = cx + side * ex * 1.2
            y = ey + eh * 1.3
            d.ellipse([x - ew * 0.6, y - ew * 0.2, x + ew * 0.6, y + ew * 0.2], fill=(250, 170, 170))
    d.line([(cx, ey + eh * 1.2), (cx - 2, ey + eh * 1.4)], fill=_shade(f.skin, 0.7), width=2)
    my = f.cy + f.fh * rng.uniform(0.55, 0.65)
    mw = f.fw * rng.uniform(0.1, 0.22)
    if rng.random() < 0.5:
        d.arc([cx - mw, my - mw * 0.6, cx + mw, my + mw * 0.6], 20, 160, fill=(150, 60, 60), width=3)
    else:
        d.chord([cx - mw, my - mw * 0.5, cx + mw, my + mw * 0.8], 0, 180, fill=(190, 80, 90))


def iter_cartoon_faces(count: int, size: int, seed: int = 0, start: int = 0) -> Iterator[Image.Image]:
    for i in range(start, start + count):
        yield cartoon_face(seed, i, size)


def cartoon_faces(count: int, size: int, seed: int = 0, start: int = 0) -> np.ndarray:
    """`count` faces as a uint8 array (count, size, size, 3)."""
    out = np.empty((count, size, size, 3), dtype=np.uint8)
    for k, img in enumerate(iter_cartoon_faces(count, size, seed, start)):
        out[k] = np.asarray(img)
    return out


def write_faces_zip(path: str | Path, count: int, size: int = 96, seed: int = 0, quality: int = 95) -> Path:
    """Write faces/0.jpg .. faces/{count-1}.jpg into a zip at `path`, atomically; memory does not grow with count."""
    path = Path(path)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for i, img in enumerate(iter_cartoon_faces(count, size, seed)):
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=quality)
            # A fixed timestamp keeps the zip's bytes (and so its sha256) a function of (count, size, seed).
            info = zipfile.ZipInfo(f"faces/{i}.jpg", date_time=(2022, 1, 1, 0, 0, 0))
            zf.writestr(info, buf.getvalue())
    return path


def _jitter(rng: np.random.Generator, colour: tuple[int, int, int], amount: int = 20) -> tuple[int, int, int]:
    return tuple(int(np.clip(v + rng.integers(-amount, amount + 1), 0, 255)) for v in colour)


def _shade(colour: tuple[int, ...], factor: float) -> tuple[int, int, int]:
    return tuple(int(v * factor) for v in colour[:3])
