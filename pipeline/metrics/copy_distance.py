"""The copy distance between an image and a training face: what the copy check flags and the copy index bounds.

Usage:
    from pipeline.metrics.copy_distance import blurred, copy_distances, shift_margin
    d = copy_distances(blurred(images), blurred(candidates))   # (B, K): image b against its K candidates
    shift_margin((64, 64))                                      # the shift in pixels the distance allows: 1

Both images are blurred (Gaussian, sigma BLUR_SIGMA px) and compared over their central crop at every shift of up
to MAX_SHIFT pixels; the distance is the smallest root-mean-square difference (pixels in [0, 1]). The blur absorbs
JPEG re-encoding, the shifts a moved crop, so an edited copy of a training face stays close while two different
faces do not. pipeline.metrics.copies flags samples by it; pipeline.metrics.copy_index finds the nearest face under
it without comparing every face. Both build on this module, and neither on the other's internals.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

BLUR_SIGMA = 1.0
MAX_SHIFT = 1  # the edits a copy check must survive move a face by a pixel


def shift_margin(size: tuple[int, int]) -> int:
    """The shift the copy distance allows at this size: tiny images keep at least half of each side."""
    return min(MAX_SHIFT, (min(size) - 1) // 4)


def blurred(images: np.ndarray) -> np.ndarray:
    x = np.asarray(images, np.float32) / 255
    return gaussian_filter(x, sigma=(0, BLUR_SIGMA, BLUR_SIGMA, 0), mode="nearest", truncate=3.0)


def copy_distances(images: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """(B, K) smallest RMS difference over shifts of up to MAX_SHIFT px between image b and its candidates.

    Each candidate's shifted crops are compared with the image's central crop; squares are summed in float64."""
    h, w = images.shape[1:3]
    m = shift_margin((h, w))
    centre = images[:, None, m : h - m, m : w - m]
    best = np.full(candidates.shape[:2], np.inf, np.float64)
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            diff = candidates[:, :, m + dy : h - m + dy, m + dx : w - m + dx] - centre
            np.minimum(best, np.einsum("bkhwc,bkhwc->bk", diff, diff, dtype=np.float64), out=best)
    return np.sqrt(best / centre[0, 0].size)
