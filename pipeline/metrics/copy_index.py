"""Exact nearest training face under the copy distance without comparing every face: a lower-bound index.

Usage:
    from pipeline.metrics.copy_index import CopyIndex, exhaustive_nearest
    index = CopyIndex.build(faces, seed=0)            # faces: (N, S, S, 3) uint8, may be a memmap; once per data
    index.save(folder, extra_meta); index = CopyIndex.load(folder, faces)
    found_index, found_distance = index.within(images, radius)       # what evaluate asks: faces within `radius`
    found_index, found_distance = index.nearest(images)              # (B,) int64, (B,) float64: every image
    found_index, found_distance = index.nearest(images, exclude=idx)  # image i may not match face idx[i]
    exhaustive_nearest(faces, images)                 # the same answer from every face: for tests and the bench
    index.stats                                        # faces the last queries touched, per query

Both answer what an exhaustive search answers: for each image, the smallest copy distance
(pipeline.metrics.copy_distance.copy_distances) to any clean face, and the lowest face index among those at that
distance; `within` only for images whose nearest face lies within `radius` (the others get -1 and inf), which is
all the copy check needs (the flagged images and the closest ones it lists), and what lets a query touch a small
part of the faces.

The bound. With X, Y the blurred image and face, W = [m, S-m)^2 the central window (m = MAX_SHIFT) and n its
number of values, the copy distance is d(x, y)^2 = min_s (1/n) sum_{p in W} (X[p] - Y[p+s])^2 over shifts s in
[-m, m]^2. Every q = p + s with q in V = [2m, S-2m)^2 comes from some p in W, so dropping the other terms gives
d_s^2 >= (1/n) |X_s - Y_V|^2, where Y_V is the face on V (one vector per face) and X_s the image moved by -s on V
(nine per image). A linear map P whose rows are orthonormal never lengthens a vector, so
d(x, y) >= min_s |P X_s - P Y_V| / sqrt(n), and the same holds for any subset of P's rows. P is the mean over
BLOCK x BLOCK cells (scaled by the cell's square root: orthonormal rows) followed by the top DIM principal
components of the faces' cell means (orthonormal too). The index stores P Y_V for every face (N x DIM floats).

`within` (a range search): a k-d tree over the first TREE_DIM components (scipy's cKDTree, built in milliseconds
when first needed) returns, for each of an image's nine shifted vectors, the faces within radius * sqrt(n) of it in
those components; only they can lie within `radius`. Their full-DIM bound prunes again, and the exact copy distance
is computed for the rest, nearest bound first. Measured at the course's size (bench/speed/copy_index.py), a query at the
calibrated threshold touches a few faces of 71k; the tree's cost grows with log N and with the faces that really
are near, not with N.

`nearest` (every image, also a far one; the calibration's held-out faces need it): the bound from the first PREFIX
components against every face (24 numbers per face instead of the copy distance's 11,532 per shift, by matrix
products over SCAN_ROWS faces), then the full-DIM bound for the FIRST faces of smallest bound and their exact
distances, which gives a best distance; then every other face whose bound is at most that distance (ties
included), until the next bound exceeds the best. Linear in N, but run once per clean data (the copy_index stage).

Bounds are lowered by SLACK so float rounding never prunes a face that the exhaustive search would pick. The exact
distances come from the same function as the exhaustive search's, one image at a time, so equal pairs give equal
bits and ties break the same way.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.metrics.copy_distance import BLUR_SIGMA, MAX_SHIFT, blurred, copy_distances, shift_margin

log = logging.getLogger(__name__)

FORMAT = 2  # 2: rows in face order, no k-means clusters
BLOCK = 2  # cell side of the block means (px)
DIM = 128  # principal components kept
PREFIX = 24  # the components a first, cheaper bound uses
TREE_DIM = 16  # components the k-d tree of `within` searches (at 71k faces, 16 leave a few candidates at 0.05)
PCA_SAMPLE = 20000  # faces the principal components are fitted on (any orthonormal basis keeps the bound exact)
BUILD_CHUNK = 2048  # faces blurred and projected at a time
SCAN_ROWS = 4096  # faces whose bounds are computed at once
FIRST = 8  # faces of smallest bound compared first, for a first best distance
QUERY_BATCH = 64  # images whose bounds are computed together
EXACT_BATCH = 4  # candidates whose exact distance is computed at once
SLACK_REL, SLACK_ABS = 1e-4, 1e-6  # bounds are lowered by this much against float32 rounding
FEATURES_FILE = "copy_index.npz"
META_FILE = "copy_index.json"


def cell_edges(length: int, block: int) -> np.ndarray:
    cells = max(1, length // block)
    return (np.arange(cells) * length) // cells


def cell_project(x: np.ndarray, edges_h: np.ndarray, edges_w: np.ndarray) -> np.ndarray:
    """(N, cells) float64: sums over each cell divided by the square root of its size (orthonormal rows)."""
    n, h, w, c = x.shape
    cells_h, cells_w = len(edges_h), len(edges_w)
    if h % cells_h == 0 and w % cells_w == 0:  # the usual case: equal cells, one reshape
        bh, bw = h // cells_h, w // cells_w
        sums = np.asarray(x, np.float32).reshape(n, cells_h, bh, cells_w, bw, c).sum(axis=(2, 4), dtype=np.float64)
        return (sums / np.sqrt(bh * bw)).reshape(n, -1)
    sums = np.add.reduceat(np.add.reduceat(np.asarray(x, np.float64), edges_h, axis=1), edges_w, axis=2)
    sizes_h = np.diff(np.append(edges_h, h)).astype(np.float64)
    sizes_w = np.diff(np.append(edges_w, w)).astype(np.float64)
    scale = np.sqrt(sizes_h[:, None] * sizes_w[None, :])[None, :, :, None]
    return (sums / scale).reshape(len(x), -1)


@dataclass
class QueryStats:
    queries: int = 0
    exact: int = 0  # face comparisons by the exact copy distance
    bounded: int = 0  # faces whose full-DIM bound was computed
    scanned: int = 0  # faces whose PREFIX-component bound was computed (`nearest`: all of them)
    tree: int = 0  # faces the k-d tree returned (`within`)

    def as_dict(self, faces: int) -> dict[str, Any]:
        q = max(1, self.queries)
        touched = max(self.scanned, self.tree, self.bounded)
        return {
            "queries": self.queries, "faces": faces, "exact_per_query": self.exact / q,
            "bounded_per_query": self.bounded / q, "scanned_per_query": self.scanned / q,
            "tree_per_query": self.tree / q, "touched_share": touched / q / max(1, faces),
        }  # fmt: skip


@dataclass
class CopyIndex:
    faces: np.ndarray  # (N, S, S, 3) uint8, may be a memmap: read only for the exact distances of candidates
    basis: np.ndarray  # float32 (DIM, cells): principal components of the cell projections
    offset: np.ndarray  # float32 (cells,): their mean (subtracted on both sides: differences do not change)
    features: np.ndarray  # float32 (N, DIM): each face's P Y_V
    meta: dict[str, Any] = field(default_factory=dict)
    stats: QueryStats = field(default_factory=QueryStats)
    prefix: np.ndarray = field(init=False, repr=False)  # float64 (N, PREFIX): the features' first components
    prefix_sq: np.ndarray = field(init=False, repr=False)  # their squared norms
    _tree: Any = field(default=None, init=False, repr=False)  # cKDTree over the first TREE_DIM components

    def __post_init__(self) -> None:
        self.prefix = np.ascontiguousarray(self.features[:, :PREFIX].astype(np.float64))
        self.prefix_sq = (self.prefix * self.prefix).sum(axis=1)

    # --- building -------------------------------------------------------------------------------------------

    @classmethod
    def build(cls, faces: np.ndarray, seed: int = 0) -> CopyIndex:
        if faces.ndim != 4 or faces.shape[-1] != 3 or faces.dtype != np.uint8 or len(faces) < 2:
            raise ValueError(f"expected at least 2 uint8 (N, S, S, 3) faces, got {faces.dtype} {faces.shape}")
        n = len(faces)
        rng = np.random.default_rng(seed)
        h, w = faces.shape[1:3]
        m = shift_margin((h, w))
        edges_h, edges_w = cell_edges(h - 4 * m, BLOCK), cell_edges(w - 4 * m, BLOCK)
        sample = np.sort(rng.choice(n, min(n, PCA_SAMPLE), replace=False))
        cells = np.concatenate([
            cell_project(face_window(np.asarray(faces[sample[i : i + BUILD_CHUNK]]), m), edges_h, edges_w)
            for i in range(0, len(sample), BUILD_CHUNK)
        ])  # fmt: skip
        offset = cells.mean(axis=0)
        dim = min(DIM, cells.shape[1], len(cells))
        basis = principal_components(cells - offset, dim, rng)
        # float32 from here on: both sides of every bound go through the same stored map
        basis = basis.astype(np.float32)
        offset = offset.astype(np.float32)
        features = np.empty((n, dim), np.float32)
        for start in range(0, n, BUILD_CHUNK):
            stop = min(start + BUILD_CHUNK, n)
            window = face_window(np.asarray(faces[start:stop]), m)
            features[start:stop] = project(cell_project(window, edges_h, edges_w), offset, basis)
        meta = {
            "format": FORMAT, "count": n, "size": [h, w], "block": BLOCK, "dim": dim, "seed": seed,
            "blur_sigma": BLUR_SIGMA, "max_shift": MAX_SHIFT,
        }  # fmt: skip
        return cls(faces, basis, offset, features, meta)

    # --- saving ---------------------------------------------------------------------------------------------

    def save(self, folder: Path, extra_meta: dict[str, Any] | None = None) -> None:
        """Write FEATURES_FILE and META_FILE into an existing folder (the caller swaps the folder in atomically)."""
        folder = Path(folder)
        np.savez(folder / FEATURES_FILE, basis=self.basis, offset=self.offset, features=self.features)
        self.meta.update(extra_meta or {})
        (folder / META_FILE).write_text(json.dumps(self.meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, faces: np.ndarray) -> CopyIndex:
        """The index saved in `folder`, for these faces; ValueError when its arrays do not fit them (wrong dtype,
        shape or count, a value that is not finite), OSError or zipfile.BadZipFile when unreadable."""
        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        with np.load(folder / FEATURES_FILE, allow_pickle=False) as z:
            arrays = {key: z[key] for key in ("basis", "offset", "features")}
        check_arrays(arrays, len(faces))
        if not isinstance(meta, dict):
            raise ValueError(f"{META_FILE} is not a JSON object")
        return cls(faces=faces, meta=meta, **arrays)

    def matches(self, faces: np.ndarray) -> bool:
        """Whether this index was built for faces of this count and size with today's constants."""
        want = {"format": FORMAT, "count": len(faces), "size": list(faces.shape[1:3]), "block": BLOCK,
                "blur_sigma": BLUR_SIGMA, "max_shift": MAX_SHIFT}  # fmt: skip
        return all(self.meta.get(k) == v for k, v in want.items())

    # --- querying -------------------------------------------------------------------------------------------

    def query_features(self, images_blurred: np.ndarray) -> np.ndarray:
        """float32 (B, shifts, DIM): P X_s for every allowed shift s of each blurred image."""
        h, w = images_blurred.shape[1:3]
        m = shift_margin((h, w))
        side_h, side_w = h - 4 * m, w - 4 * m  # the window V every shift compares
        edges_h, edges_w = cell_edges(side_h, BLOCK), cell_edges(side_w, BLOCK)
        cells_h, cells_w = len(edges_h), len(edges_w)
        windows = [(2 * m - dy, 2 * m - dx) for dy in range(-m, m + 1) for dx in range(-m, m + 1)]
        b = len(images_blurred)
        if side_h % cells_h or side_w % cells_w:  # unequal cells (odd sizes): each window on its own
            cells = [cell_project(images_blurred[:, y : y + side_h, x : x + side_w], edges_h, edges_w)
                     for y, x in windows]  # fmt: skip
        else:
            # the cells of all shifted windows are cells of one grid of block sums, taken at the window's corner:
            # one pass over the batch instead of one reduction per shift
            bh, bw = side_h // cells_h, side_w // cells_w
            pixels = np.asarray(images_blurred, np.float64)
            sums = sum(pixels[:, i : h - bh + 1 + i, j : w - bw + 1 + j] for i in range(bh) for j in range(bw))
            scale = 1 / np.sqrt(bh * bw)
            cells = [(sums[:, y : y + bh * cells_h : bh, x : x + bw * cells_w : bw] * scale).reshape(b, -1)
                     for y, x in windows]  # fmt: skip
        features = project(np.concatenate(cells), self.offset, self.basis).reshape(len(windows), b, -1)
        return np.ascontiguousarray(features.swapaxes(0, 1))

    def within(
        self, images: np.ndarray, radius: float, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(face index, copy distance) of each image's nearest clean face where that distance is at most `radius`,
        exactly as exhaustive_nearest; (-1, inf) for an image with no face that close."""
        scale = self._scale(images)
        if self._tree is None:
            from scipy.spatial import cKDTree  # here: only a range search needs it

            self._tree = cKDTree(self.features[:, :TREE_DIM].astype(np.float64))
        width = self._tree.m
        # a face within `radius` has its lowered bound <= radius, so its TREE_DIM distance is at most this
        reach = (radius + SLACK_ABS) / (scale * (1 - SLACK_REL))
        start_best = np.nextafter(radius, np.inf)  # the refinement keeps faces strictly below its best: <= radius
        index = np.full(len(images), -1, np.int64)
        dist = np.full(len(images), np.inf)
        for start in range(0, len(images), QUERY_BATCH):
            batch = blurred(images[start : start + QUERY_BATCH])
            queries = self.query_features(batch)
            shifts = queries.shape[1]
            hits = self._tree.query_ball_point(
                queries[:, :, :width].reshape(-1, width).astype(np.float64), reach, return_sorted=False,
                workers=torch.get_num_threads(),  # the threads torch may use: the tree's search is most of a query
            )
            for j in range(len(batch)):
                i = start + j
                rows = np.unique(np.concatenate([np.asarray(h, np.int64) for h in hits[j * shifts : (j + 1) * shifts]]))
                if exclude is not None:
                    rows = rows[rows != int(exclude[i])]
                self.stats.queries += 1
                self.stats.tree += len(rows)
                best_d, best_i = self._refine(batch[j], queries[j], rows, np.zeros(len(rows)), scale, (start_best, -1))
                if best_i >= 0:
                    index[i], dist[i] = best_i, best_d
        return index, dist

    def nearest(self, images: np.ndarray, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(face index, copy distance) of each image's nearest clean face, exactly as exhaustive_nearest."""
        scale = self._scale(images)
        index = np.empty(len(images), np.int64)
        dist = np.empty(len(images), np.float64)
        for start in range(0, len(images), QUERY_BATCH):
            batch = blurred(images[start : start + QUERY_BATCH])
            queries = self.query_features(batch)
            bounds = self.prefix_bounds(queries, scale)
            for j in range(len(batch)):
                i = start + j
                skip = -1 if exclude is None else int(exclude[i])
                index[i], dist[i] = self._one(batch[j], queries[j], bounds[j], scale, skip)
        return index, dist

    def _scale(self, images: np.ndarray) -> float:
        """1 / sqrt(n): the copy distance is the RMS over the central window."""
        if images.shape[1:3] != self.faces.shape[1:3]:
            raise ValueError(f"images are {images.shape[1:3]}, the index's faces {self.faces.shape[1:3]}")
        h, w = images.shape[1:3]
        m = shift_margin((h, w))
        return 1.0 / np.sqrt((h - 2 * m) * (w - 2 * m) * 3)

    def prefix_bounds(self, queries: np.ndarray, scale: float) -> np.ndarray:
        """float64 (B, N): each query's bound on every face from the first PREFIX components, by matrix products
        (|q|^2 + |f|^2 - 2 q.f in float64, its rounding covered by `tol`) over SCAN_ROWS faces at a time."""
        b, shifts, _ = queries.shape
        width = self.prefix.shape[1]  # PREFIX, or fewer when the index keeps fewer components (tiny data)
        q = torch.from_numpy(queries[:, :, :width].reshape(b * shifts, width).astype(np.float64))
        q_sq = (q * q).sum(dim=1)
        out = np.empty((b, len(self.features)), np.float64)
        for start in range(0, len(self.features), SCAN_ROWS):
            rows = slice(start, start + SCAN_ROWS)
            f = torch.from_numpy(self.prefix[rows])
            f_sq = torch.from_numpy(self.prefix_sq[rows])
            sq = (q_sq[:, None] - 2 * (q @ f.T)).reshape(b, shifts, -1).amin(dim=1) + f_sq[None]
            tol = 1e-9 * (q_sq.max() + f_sq)[None]
            out[:, rows] = torch.sqrt(torch.clamp(sq - tol, min=0.0)).numpy()
        out *= scale * (1 - SLACK_REL)  # lower() in place: the array is the query batch's largest
        out -= SLACK_ABS
        return out

    def _one(self, image: np.ndarray, query: np.ndarray, bound: np.ndarray, scale: float, skip: int
             ) -> tuple[int, float]:  # fmt: skip
        """The nearest face of one image: a first best distance from the FIRST faces of smallest bound, then every
        face whose bound is at most that distance, nearest bound first, until the next bound exceeds the best."""
        self.stats.queries += 1
        self.stats.scanned += len(bound)
        if skip >= 0:
            bound = bound.copy()
            bound[skip] = np.inf
        first = np.argpartition(bound, min(FIRST, len(bound) - 1))[:FIRST]
        best = self._refine(image, query, first, bound[first], scale, (np.inf, -1))
        rest = np.flatnonzero(bound <= best[0])
        rest = rest[~np.isin(rest, first)]
        for start in range(0, len(rest), SCAN_ROWS):  # bounded memory however many faces tie
            rows = rest[start : start + SCAN_ROWS]
            rows = rows[bound[rows] <= best[0]]
            best = self._refine(image, query, rows, bound[rows], scale, best)
        return best[1], best[0]

    def _refine(
        self, image: np.ndarray, query: np.ndarray, rows: np.ndarray, bound: np.ndarray, scale: float,
        best: tuple[float, int],
    ) -> tuple[float, int]:  # fmt: skip
        """Faces whose first bound passed: the bound from all DIM components, then the exact distance (a face
        replaces the best when strictly closer, or as close with a lower index)."""
        best_d, best_i = best
        rows = rows[bound <= best_d]
        self.stats.bounded += len(rows)
        full = query[:, None, :] - self.features[rows][None]
        bound = lower(np.sqrt(np.einsum("skd,skd->sk", full, full, dtype=np.float64).min(axis=0)) * scale)
        keep = bound <= best_d
        rows, bound = rows[keep], bound[keep]
        by_bound = np.argsort(bound, kind="stable")
        cand, cand_bound = rows[by_bound], bound[by_bound]
        for s in range(0, len(cand), EXACT_BATCH):
            if cand_bound[s] > best_d:
                break
            chunk = cand[s : s + EXACT_BATCH][cand_bound[s : s + EXACT_BATCH] <= best_d]
            d = pair_distances(image, self.faces, chunk)
            self.stats.exact += len(chunk)
            for face, value in zip(chunk.tolist(), d.tolist(), strict=True):
                if value < best_d or (value == best_d and face < best_i):
                    best_d, best_i = value, face
        return best_d, best_i


def check_arrays(arrays: dict[str, np.ndarray], count: int) -> None:
    """ValueError unless basis (dim, cells), offset (cells,) and features (count, dim) are finite float32."""
    basis, offset, features = arrays["basis"], arrays["offset"], arrays["features"]
    shapes_fit = (
        basis.ndim == 2 and offset.shape == (basis.shape[1],) and features.shape == (count, basis.shape[0])
        and 0 < basis.shape[0] <= DIM
    )  # fmt: skip
    if not shapes_fit:
        raise ValueError(f"arrays of shapes {[a.shape for a in arrays.values()]} do not fit {count} faces")
    for name, a in arrays.items():
        if a.dtype != np.float32 or not np.isfinite(a).all():
            raise ValueError(f"{name} is not finite float32 ({a.dtype})")


def project(cells: np.ndarray, offset: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """float32 (N, DIM): the cell projections, centred, on the principal components (float64 arithmetic).
    torch's matrix product: numpy's BLAS starts threads of its own beside torch's, which on a busy machine cost
    more than the product."""
    centred = torch.from_numpy(np.ascontiguousarray(cells - offset.astype(np.float64)))
    return (centred @ torch.from_numpy(basis.astype(np.float64)).T).numpy().astype(np.float32)


def lower(bound: np.ndarray) -> np.ndarray:
    """The bound lowered against float32 rounding of the features and the basis."""
    return bound * (1 - SLACK_REL) - SLACK_ABS


def face_window(faces: np.ndarray, m: int) -> np.ndarray:
    """Blurred faces on V = [2m, S-2m)^2: the part of a face every shift of the copy distance compares."""
    h, w = faces.shape[1:3]
    return blurred(faces)[:, 2 * m : h - 2 * m, 2 * m : w - 2 * m]


def pair_distances(image_blurred: np.ndarray, faces: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """float64 (len(indices),): copy distances of one blurred image to the faces at `indices` (read in order)."""
    order = np.argsort(indices, kind="stable")
    picked = blurred(np.asarray(faces[np.asarray(indices)[order]]))
    d = np.empty(len(indices), np.float64)
    d[order] = copy_distances(image_blurred[None], picked[None])[0]
    return d


def exhaustive_nearest(
    faces: np.ndarray, images: np.ndarray, exclude: np.ndarray | None = None, chunk: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """(face index, copy distance) of each image's nearest face by the copy distance to every face: the answer
    CopyIndex.nearest must give (lowest index among equal distances)."""
    index = np.full(len(images), -1, np.int64)
    dist = np.full(len(images), np.inf)
    query = blurred(images)
    for start in range(0, len(faces), chunk):
        stop = min(start + chunk, len(faces))
        block = blurred(np.asarray(faces[start:stop]))
        for i in range(len(images)):
            d = copy_distances(query[i : i + 1], block[None])[0]
            if exclude is not None and start <= exclude[i] < stop:
                d[exclude[i] - start] = np.inf
            j = int(d.argmin())
            if d[j] < dist[i]:
                dist[i], index[i] = d[j], start + j
    return index, dist


def principal_components(centred: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """(dim, cells) orthonormal rows spanning about the top `dim` principal directions (randomised range finder
    with one power iteration: any orthonormal basis keeps the bound exact; a better one only prunes more)."""
    width = min(centred.shape[1], dim + 16)
    q = np.linalg.qr(centred.T @ (centred @ rng.standard_normal((centred.shape[1], width))))[0]
    for _ in range(1):
        q = np.linalg.qr(centred.T @ (centred @ q))[0]
    small = centred @ q
    _, vectors = np.linalg.eigh(small.T @ small)
    return np.ascontiguousarray((q @ vectors[:, ::-1][:, :dim]).T)
