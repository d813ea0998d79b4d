"""Read any folder of images for scoring (`animegan evaluate --images DIR`): decoded as the clean stage decodes them.

Usage:
    from pipeline.metrics.image_folder import read_image_folder
    images, bad = read_image_folder(Path("output"), max_pixels=4096 * 4096)   # uint8 (N, H, W, 3), names that failed
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.data.clean import Dropped, decode_rgb

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


def read_image_folder(folder: Path, max_pixels: int) -> tuple[np.ndarray, list[str]]:
    """Every image file in `folder` (numeric-aware name order) as uint8 (N, H, W, 3), and the names that failed.

    Files are decoded as the clean stage decodes them (pipeline.data.clean.decode_rgb): one larger than max_pixels
    (data.max_pixels) is refused from its header and listed as bad, like an unreadable one. Images whose size
    differs from the most common size among them are resized to it (bicubic), so a folder of mixed sizes is
    still scored, and one large image never makes every other one large too."""
    files = sorted((p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
    decoded: list[Image.Image] = []
    bad: list[str] = []
    for path in files:
        try:
            rgb, _, _ = decode_rgb(path, max_pixels)
        except (Dropped, OSError) as e:
            log.debug("%s: %s", path, e)
            bad.append(path.name)
            continue
        decoded.append(rgb)
    if not decoded:
        return np.zeros((0, 1, 1, 3), np.uint8), bad
    size = Counter(im.size for im in decoded).most_common(1)[0][0]
    resized = sum(im.size != size for im in decoded)
    if resized:
        log.warning("%d images resized to %dx%d (the most common size)", resized, *size)
    same_size = [im if im.size == size else im.resize(size, Image.Resampling.BICUBIC) for im in decoded]
    images = np.stack([np.asarray(im) for im in same_size])
    return images, bad


def _natural_key(path: Path) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))
