"""Catch samples that hand back a training face: the nearest clean face of each image, and a calibrated threshold.

Usage:
    from pipeline.metrics.copies import CopyCheck
    check = CopyCheck(faces, reference_features, reference_indices, index=CopyIndex.load(folder, faces))
    # faces: (N, S, S, 3) uint8, may be a memmap; without index=, one is built on first use
    calibration = check.calibrate(count=1000, quantile=0.01, seed=0, jpeg_quality=75)
    found = check.check(images, features, calibration.threshold, near=calibration.near())   # one draw
    found.fraction, found.flagged          # share and indices of images closer to a training face than threshold
    found.pixel_index, found.pixel_distance      # per image: nearest clean face and its copy distance, where it
                                                 # lies within `near` (else -1 and inf)
    found.worst(16)                        # the closest images within `near`, closest first
    found.feature_index, found.feature_distance  # per image: nearest reference face in Inception feature space

Copy distance: pipeline.metrics.copy_distance (both images blurred, compared at every shift of up to a pixel; the
smallest RMS difference of pixels in [0, 1]): an edited copy of a training face stays close while two different
faces do not. The search is exact (the nearest by copy distance among every clean face, lowest index
on ties) for every image whose nearest face lies within `near` (at least the threshold; by default the calibration's
novel quantile: as close as the closest 1% of genuinely new faces come), and says "none within `near`" for the
others, which is what the flag and the list of closest images need and what keeps a query cheap:
pipeline.metrics.copy_index bounds the copy distance from below with short vectors cached per face (the copy_index
stage builds them once per clean data), a k-d tree returns the few faces whose bound can be within `near`, and a
memmap of the faces is read only at those candidates.

Calibration (the clean faces are all training faces, so "held-out" is made by leaving faces out): `count` clean
faces chosen by `seed` are held out one at a time; each one's nearest copy distance to all the other clean faces
is how close a genuinely new face from the same source comes to the training set (`novel`). The same held-out
faces, shifted by one pixel and re-encoded as JPEG at `jpeg_quality`, are compared with their own originals: how
far a lightly edited copy lands (`edited`). The threshold is the geometric mean of the largest edited distance and
the `quantile` of the novel distances, so every edited copy of the calibration is flagged and at most about
`quantile` of new faces would be. When edited copies land as far as new faces, the threshold is that quantile and
a warning says the check cannot tell them apart. The source data holds near-duplicates of its own (the same
drawing cropped twice): they sit in the low tail of `novel`, and a sample that close to a training face is flagged
too, rightly. Measured on the shared 5k real faces (1,500 training, 500 held out): edited copies land at most 0.026
from their originals, the novel distances' 1% quantile is 0.082, so the threshold is 0.046.

Feature space: the nearest among the reference's cached subset of Inception features (the precision/recall
subset, not every clean face), with the `quantile` of that subset's own nearest-neighbour distances beside it for
scale. The flag itself uses the pixel copy distance, which sees every training face.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
from PIL import Image

from pipeline.core.manifest import is_number
from pipeline.metrics.copy_distance import blurred, copy_distances
from pipeline.metrics.copy_index import CopyIndex
from pipeline.metrics.prdc import distances, kth_neighbour_radii, row_block, squared_norms

log = logging.getLogger(__name__)

COARSE = 16  # side of the area-averaged image `coarse` compares
CALIBRATION_RANGES = {  # key -> (lowest, highest, integer): what a calibration read back may hold
    "threshold": (0.0, math.inf, False), "held_out": (0, math.inf, True), "seed": (0, math.inf, True),
    "quantile": (0.0, 1.0, False), "novel_quantile": (0.0, math.inf, False), "novel_min": (0.0, math.inf, False),
    "edited_max": (0.0, math.inf, False), "jpeg_quality": (1, 100, True), "feature_quantile": (0.0, math.inf, False),
}  # fmt: skip
SHIFTS = ((1, 0), (0, 1), (-1, 0), (0, -1))  # calibration's edited copies cycle through these


@dataclass
class Calibration:
    threshold: float
    method: str  # "calibrated" or "fixed"
    held_out: int = 0
    seed: int | None = None
    quantile: float | None = None
    novel_quantile: float | None = None  # that quantile of held-out faces' nearest copy distances
    novel_min: float | None = None
    edited_max: float | None = None  # largest copy distance of a shifted, re-encoded held-out face to its original
    jpeg_quality: int | None = None
    feature_quantile: float | None = None  # the quantile of the reference subset's nearest-neighbour distances

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, record: Any) -> Calibration:
        """A calibration read back (the copy_index stage's calibration.json); ValueError naming the first key that
        is missing, unknown, of the wrong type or out of range."""
        if not isinstance(record, dict) or record.get("method") != "calibrated":
            raise ValueError("not a calibration (method is not 'calibrated')")
        unknown = set(record) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        for key, (lo, hi, integer) in CALIBRATION_RANGES.items():
            if (key in record or key == "threshold") and not is_number(record.get(key), lo, hi, integer):
                raise ValueError(f"{key} is {record.get(key)!r}, not a number in [{lo}, {hi}]")
        return cls(**record)

    def near(self) -> float:
        """How close a sample must come to be listed among the closest: as close as the closest `quantile` of
        genuinely new faces come (the novel quantile), and never less than the threshold."""
        return max(self.threshold, self.novel_quantile or 0.0)


@dataclass
class DrawCopies:
    threshold: float
    pixel_index: np.ndarray  # (N,) index into the clean faces; -1 where no face lies within `near`
    pixel_distance: np.ndarray  # (N,) copy distance; inf where no face lies within `near`
    near: float = 0.0  # the search radius: images farther from every face than this were not searched further
    feature_index: np.ndarray | None = None  # (N,) index into the clean faces
    feature_distance: np.ndarray | None = None
    flagged: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.flagged = np.flatnonzero(self.pixel_distance < self.threshold)

    @property
    def fraction(self) -> float:
        return len(self.flagged) / len(self.pixel_distance)

    def worst(self, count: int) -> list[dict[str, Any]]:
        """The `count` images closest to a training face among those within `near`, closest first."""
        within = np.flatnonzero(np.isfinite(self.pixel_distance))
        order = within[np.argsort(self.pixel_distance[within], kind="stable")[:count]]
        out = []
        for i in order:
            row = {
                "image": int(i),
                "training_index": int(self.pixel_index[i]),
                "distance": float(self.pixel_distance[i]),
                "copy": bool(self.pixel_distance[i] < self.threshold),
            }
            if self.feature_index is not None and self.feature_distance is not None:
                row["feature_training_index"] = int(self.feature_index[i])
                row["feature_distance"] = float(self.feature_distance[i])
            out.append(row)
        return out


class CopyCheck:
    def __init__(
        self,
        faces: np.ndarray,
        reference_features: np.ndarray | None = None,
        reference_indices: np.ndarray | None = None,
        index: CopyIndex | None = None,
    ) -> None:
        if faces.ndim != 4 or faces.shape[-1] != 3 or faces.dtype != np.uint8 or len(faces) < 2:
            raise ValueError(f"expected at least 2 uint8 (N, S, S, 3) faces, got {faces.dtype} {faces.shape}")
        self.faces = faces
        self.size = faces.shape[1:3]
        self.index = index  # a pipeline.metrics.copy_index.CopyIndex over `faces`, or None: built when first needed
        has_features = reference_features is not None and len(reference_features) > 0
        self.ref = np.asarray(reference_features, np.float64) if has_features else None
        self.ref_indices = np.asarray(reference_indices) if has_features else None

    def nearest(self, images: np.ndarray, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(index, copy distance) of each image's nearest clean face; `exclude[i]` is a face image i may not match.
        Exact (every face is considered; pipeline.metrics.copy_index compares only those its bound cannot rule out)."""
        return self.copy_index().nearest(self.fit(images), exclude=exclude)

    def copy_index(self) -> CopyIndex:
        """The index over the clean faces: the one given (the copy_index stage's cache), else built here once."""
        if self.index is None:
            self.index = CopyIndex.build(self.faces)
        return self.index

    def nearest_features(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(clean-face index, distance) of each feature row's nearest reference feature; None without a reference."""
        if self.ref is None or self.ref_indices is None:
            return None
        f = np.asarray(features, np.float64)
        f_sq, r_sq = squared_norms(f), squared_norms(self.ref)
        best = np.full(len(f), np.inf)
        arg = np.zeros(len(f), np.int64)
        step = row_block(len(f))
        for start in range(0, len(self.ref), step):
            stop = min(start + step, len(self.ref))
            d = distances(self.ref[start:stop], f, r_sq[start:stop], f_sq)
            rows = d.argmin(axis=0)
            closer = d[rows, np.arange(len(f))] < best
            best[closer] = d[rows, np.arange(len(f))][closer]
            arg[closer] = rows[closer] + start
        return self.ref_indices[arg], best

    def calibrate(self, count: int, quantile: float, seed: int, jpeg_quality: int) -> Calibration:
        n = len(self.faces)
        held = np.sort(np.random.default_rng(seed).choice(n, min(count, n - 1), replace=False))
        originals = np.asarray(self.faces[held])
        _, novel = self.nearest(originals, exclude=held)
        edited = np.stack([edit(face, *SHIFTS[i % len(SHIFTS)], jpeg_quality) for i, face in enumerate(originals)])
        edited_d = copy_distances(blurred(edited), blurred(originals)[:, None]).ravel()
        novel_q, edited_max = float(np.quantile(novel, quantile)), float(edited_d.max())
        if edited_max < novel_q:
            threshold = float(np.sqrt(edited_max * novel_q))
        else:
            threshold = novel_q
            log.warning(
                "copy check: edited copies land as far from their originals (%.4g) as new faces from the training "
                "set (%.4g at quantile %g): it cannot tell them apart on these faces", edited_max, novel_q, quantile,
            )  # fmt: skip
        feature_q = self.feature_quantile(quantile)
        return Calibration(
            threshold=threshold, method="calibrated", held_out=len(held), seed=seed, quantile=quantile,
            novel_quantile=novel_q, novel_min=float(novel.min()), edited_max=edited_max, jpeg_quality=jpeg_quality,
            feature_quantile=feature_q,
        )  # fmt: skip

    def feature_quantile(self, quantile: float) -> float | None:
        """The `quantile` of the reference subset's nearest-neighbour feature distances (None without two)."""
        if self.ref is None or len(self.ref) < 2:
            return None
        return float(np.quantile(kth_neighbour_radii(self.ref, 1), quantile))

    def check(
        self, images: np.ndarray, features: np.ndarray | None, threshold: float, near: float = 0.0
    ) -> DrawCopies:
        """The flags at `threshold`, and each image's nearest face where it lies within max(threshold, near)."""
        near = max(threshold, near)
        index, dist = self.copy_index().within(self.fit(images), near)
        found = DrawCopies(threshold, index, dist, near)
        by_features = self.nearest_features(features) if features is not None else None
        if by_features is not None:
            found.feature_index, found.feature_distance = by_features
        return found

    def fit(self, images: np.ndarray) -> np.ndarray:
        """Images at the clean faces' size (a folder of other sizes is resized as the clean stage does)."""
        if images.shape[1:3] == self.size:
            return images
        h, w = self.size
        return np.stack([np.asarray(Image.fromarray(im).resize((w, h), Image.Resampling.LANCZOS)) for im in images])


def coarse(images: np.ndarray) -> np.ndarray:
    """float32 (N, COARSE*COARSE*3): the mean of each cell of a COARSE x COARSE grid, pixels in [0, 1]."""
    n, h, w, _ = images.shape
    if h % COARSE == 0 and w % COARSE == 0:  # the usual case (64 px): one reshape, no float copy of the whole chunk
        bh, bw = h // COARSE, w // COARSE
        rows = np.asarray(images).reshape(n * COARSE, bh, w * 3).sum(axis=1, dtype=np.float32)  # one axis at a time:
        cells = rows.reshape(n * COARSE, COARSE, bw, 3).sum(axis=2)  # twice as fast as a two-axis mean
        return (cells / (255 * bh * bw)).reshape(n, -1)
    x = np.asarray(images, np.float32) / 255
    for axis in (1, 2):
        size = x.shape[axis]
        edges = (np.arange(min(COARSE, size)) * size) // min(COARSE, size)
        widths = np.diff(np.append(edges, size)).astype(np.float32)
        shape = [1, 1, 1, 1]
        shape[axis] = len(widths)
        x = np.add.reduceat(x, edges, axis=axis) / widths.reshape(shape)
    return x.reshape(len(x), -1)


def edit(face: np.ndarray, dx: int, dy: int, quality: int) -> np.ndarray:
    """`face` moved by (dx, dy) pixels (edges repeated) and re-encoded as JPEG: a lightly edited copy."""
    h, w = face.shape[:2]
    padded = np.pad(face, ((1, 1), (1, 1), (0, 0)), mode="edge")
    moved = padded[1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]
    buf = io.BytesIO()
    Image.fromarray(moved).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))
