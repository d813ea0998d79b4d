"""Tile a batch of images into one PNG: previews of the clean data, training grids, sample sheets.

Usage:
    from pipeline.core.image_grid import grid_image, save_grid, save_note
    save_grid(faces[:64], Path("plots/clean_preview.png"), ncol=8)   # faces: uint8 (N, H, W, 3)
    img = grid_image(faces[:16], ncol=4)                             # the same, as a PIL image
    save_note("no sample within 0.043 of a training face", Path("plots/copies.png"))  # a picture with nothing to tile

Cells are separated by a `pad`-pixel black border (as torchvision's make_grid draws it); a last row that is not
full is left black. The PNG is written atomically, and equal images give equal bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipeline.core.atomic import atomic_path


def grid_image(images: np.ndarray, ncol: int, pad: int = 2) -> Image.Image:
    """uint8 (N, H, W, C) with C in {1, 3} -> one RGB image of ceil(N / ncol) rows and min(N, ncol) columns."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.dtype != np.uint8 or len(images) == 0:
        raise ValueError(f"expected uint8 (N, H, W, 1|3) with N >= 1, got {images.dtype} {images.shape}")
    if ncol < 1:
        raise ValueError(f"ncol must be >= 1, got {ncol}")
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    n, h, w, _ = images.shape
    cols = min(n, ncol)
    rows = -(-n // cols)
    canvas = np.zeros((pad + rows * (h + pad), pad + cols * (w + pad), 3), dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        canvas[y : y + h, x : x + w] = img
    return Image.fromarray(canvas)


def save_grid(images: np.ndarray, path: Path, ncol: int, pad: int = 2) -> Path:
    """Write grid_image(images, ncol, pad) as a PNG at `path` (atomically); return the path."""
    path = Path(path)
    return save_png(grid_image(images, ncol, pad), path)


def save_note(text: str, path: Path, width: int = 400, height: int = 40) -> Path:
    """Write a PNG that says `text` (atomically): for a picture a pipeline declares as an output but that has no
    images to show this time, so the file still exists and says why it is empty."""
    img = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(img).text((8, height // 2), text, fill="black", anchor="lm")
    return save_png(img, path)


def save_png(img: Image.Image, path: Path) -> Path:
    """Write `img` as a PNG at `path` atomically; return the path."""
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        img.save(tmp, format="PNG")
    return path
