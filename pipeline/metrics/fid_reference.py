"""The FID reference: Inception statistics of the clean faces, computed once and stored with what they depend on.

Usage:
    from pipeline.metrics.fid_reference import backbone_for, compute_reference, save_reference, load_reference
    backbone = backbone_for(params)     # the Inception of eval.fid on the `device` param's device, eval's speed options
    from pipeline.core.hashing import array_sha256
    ref = compute_reference(backbone, faces, count=0, batch_size=50, kid_pool=10000, kid_seed=0,
                            prdc_count=1000, prdc_seed=0)
    save_reference(ref, Path("data/fid_reference"), data_sha256=array_sha256(faces_path))  # atomic folder swap
    ref = load_reference(Path("data/fid_reference"))
    ref.mean, ref.cov          # float64 (2048,), (2048, 2048)
    ref.kid_features           # float32 (P, 2048): a seeded pool of reference features for KID
    ref.prdc_features          # float32 (Q, 2048): another seeded subset, for precision/recall/density/coverage
    ref.prdc_indices           # int64 (Q,): which clean faces those are
    ref.meta                   # data_sha256, weights_sha256, fid_backbone, count, kid_pool, kid_seed, ...

The folder holds stats.npz (mean, cov, kid_features, prdc_features, prdc_indices), meta.json and a manifest
(pipeline.core.manifest: both files' sha256 and the meta they were made with). load_reference checks the manifest
before it opens a file, then every array's dtype, shape and finiteness against the meta, and refuses in one line
(rerun `animegan fid-reference`: hours on CPU, not something to redo silently) when anything is off; is_current
(the stage's "keep it") says no to such a folder, so the stage rebuilds it as if it were absent. `count` 0 means
every face; otherwise the first `count` faces (the clean stage's order is deterministic). Statistics are
accumulated in float64 over fixed chunks, so neither the batch size nor the chunking changes them. KID needs
features, not moments: a pool of `kid_pool` faces (0: all) chosen by a generator seeded with `kid_seed` keeps the
folder small for 71k faces.
Precision/recall/density/coverage get their own seeded subset of `prdc_count` faces (0: all) from the same pass,
so scoring a draw never runs the reference through Inception again.
"""

from __future__ import annotations

import json
import logging
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.core.atomic import staged_outputs
from pipeline.core.config import Params
from pipeline.core.device import resolve_device
from pipeline.core.errors import UserError
from pipeline.core.manifest import check_manifest, is_number, write_manifest
from pipeline.core.progress import progress
from pipeline.core.speed import resolve_speed
from pipeline.metrics.fid import FeatureStats
from pipeline.metrics.inception import FEATURE_DIM, Backbone, extract_features, load_backbone

log = logging.getLogger(__name__)

STATS_FILE = "stats.npz"
META_FILE = "meta.json"
CHUNK = 1000  # images per accumulation step; fixed so statistics never depend on a tunable
FORMAT = 2  # 2: prdc_features, prdc_indices


@dataclass
class Reference:
    mean: np.ndarray
    cov: np.ndarray
    kid_features: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    prdc_features: np.ndarray = field(default_factory=lambda: np.zeros((0, FEATURE_DIM), np.float32))
    prdc_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def backbone_for(params: Params, device: torch.device | None = None) -> Backbone:
    """The Inception the reference is made and checked with: eval.fid's weights on `device` (default: the `device`
    param's), under eval's speed options there. The fid_reference stage and evaluate both load it here."""
    fid = params.eval.fid
    device = device or resolve_device(params.device)
    speed = resolve_speed(params.eval, device)
    return load_backbone(
        fid.weights, fid.sha256, Path(fid.cache_dir), fid.calibration_seed, params.data.timeout_s, device, speed=speed
    )


def backbone_meta(backbone: Backbone) -> dict[str, Any]:
    meta: dict[str, Any] = {"fid_backbone": backbone.name, "weights_sha256": backbone.weights_sha256}
    if backbone.calibration_seed is not None:
        meta["calibration_seed"] = backbone.calibration_seed
    if backbone.precision != "fp32":  # fp32 references, older ones included, carry no key
        meta["inception_precision"] = backbone.precision
    return meta


def _precision_differs(meta: dict[str, Any], want: dict[str, Any]) -> bool:
    return meta.get("inception_precision", "fp32") != want.get("inception_precision", "fp32")


def seeded_subset(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted indices of `size` of range(n) drawn by a generator seeded with `seed` (all when size is 0 or >= n)."""
    if size == 0 or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def compute_reference(
    backbone: Backbone,
    faces: np.ndarray,
    count: int,
    batch_size: int,
    kid_pool: int,
    kid_seed: int,
    prdc_count: int = 0,
    prdc_seed: int = 0,
) -> Reference:
    n = len(faces) if count == 0 else min(count, len(faces))
    if n < 2:
        raise UserError(f"the FID reference needs at least 2 clean faces, found {len(faces)}")
    if count > len(faces):
        log.warning("eval.fid.reference_count=%d but only %d clean faces: using all of them", count, len(faces))
    pool = seeded_subset(n, kid_pool, kid_seed)
    prdc_indices = seeded_subset(n, prdc_count, prdc_seed)
    stats = FeatureStats.empty(FEATURE_DIM)
    kid_features = np.empty((len(pool), FEATURE_DIM), np.float32)
    prdc_features = np.empty((len(prdc_indices), FEATURE_DIM), np.float32)
    with progress(total=n, desc="fid reference", unit="img") as bar:
        for start in range(0, n, CHUNK):
            stop = min(start + CHUNK, n)
            feats = extract_features(backbone, np.asarray(faces[start:stop]), batch_size)
            stats.add(feats)
            lo, hi = np.searchsorted(pool, [start, stop])
            kid_features[lo:hi] = feats[pool[lo:hi] - start]
            lo, hi = np.searchsorted(prdc_indices, [start, stop])
            prdc_features[lo:hi] = feats[prdc_indices[lo:hi] - start]
            bar.update(stop - start)
    meta = {
        **backbone_meta(backbone),
        "count": n,
        "image_shape": list(faces.shape[1:]),
        "kid_pool": int(len(pool)),
        "kid_seed": kid_seed,
        "prdc_count": int(len(prdc_indices)),
        "prdc_seed": prdc_seed,
        "feature_dim": FEATURE_DIM,
        "format": FORMAT,
    }
    return Reference(stats.mean, stats.cov, kid_features, meta, prdc_features, prdc_indices)


def save_reference(ref: Reference, folder: Path, data_sha256: str) -> None:
    """Write stats.npz and meta.json into a fresh folder and swap it in: never a half-written reference."""
    with staged_outputs() as out:
        tmp = out.folder(folder)
        np.savez(
            tmp / STATS_FILE, mean=ref.mean, cov=ref.cov, kid_features=ref.kid_features,
            prdc_features=ref.prdc_features, prdc_indices=ref.prdc_indices,
        )  # fmt: skip
        meta = {**ref.meta, "data_sha256": data_sha256}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        write_manifest(tmp, [STATS_FILE, META_FILE], meta)
    ref.meta = meta


def load_reference(folder: Path) -> Reference:
    folder = Path(folder)
    if not (folder / STATS_FILE).is_file() or not (folder / META_FILE).is_file():
        raise UserError(f"FID reference not found in {folder}/: run `animegan fid-reference` (or dvc repro)")
    problem = check_manifest(folder)
    if problem is not None:
        raise UserError(f"FID reference unusable: {problem.reason}: rerun `animegan fid-reference`")
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        with np.load(folder / STATS_FILE, allow_pickle=False) as z:
            ref = Reference(mean=z["mean"], cov=z["cov"], kid_features=z["kid_features"], meta=meta)
            ref.prdc_features, ref.prdc_indices = z["prdc_features"], z["prdc_indices"]
        check_arrays(ref)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise UserError(
            f"FID reference in {folder}/ is unusable ({type(e).__name__}: {e}): rerun `animegan fid-reference`"
        ) from None
    return ref


def check_arrays(ref: Reference) -> None:
    """ValueError unless the arrays are finite, of the dtypes and shapes compute_reference makes, and as many as
    the meta says."""
    meta, dim = ref.meta, len(ref.mean)
    if not isinstance(meta, dict):
        raise ValueError(f"{META_FILE} is not a JSON object")
    counts = {key: meta.get(key) for key in ("count", "kid_pool", "prdc_count")}
    if not all(is_number(v, 0, math.inf, integer=True) for v in counts.values()) or counts["count"] < 2:
        raise ValueError(f"meta counts {counts} are not whole numbers (count at least 2)")
    shapes = {"mean": (dim,), "cov": (dim, dim), "kid_features": (counts["kid_pool"], dim),
              "prdc_features": (counts["prdc_count"], dim), "prdc_indices": (counts["prdc_count"],)}  # fmt: skip
    kinds = {"mean": np.float64, "cov": np.float64, "kid_features": np.float32, "prdc_features": np.float32}
    for name, shape in shapes.items():
        a = getattr(ref, name)
        if a.shape != shape or (name in kinds and (a.dtype != kinds[name] or not np.isfinite(a).all())):
            raise ValueError(f"{name} is {a.dtype} {a.shape}, not finite {kinds.get(name, 'int')} {shape}")
    indices = ref.prdc_indices
    if indices.dtype.kind not in "iu" or (len(indices) and not 0 <= indices.min() <= indices.max() < counts["count"]):
        raise ValueError("prdc_indices are not indices of the reference faces")


def check_reference(ref: Reference, data_sha256: str, backbone: Backbone, folder: Path) -> None:
    """UserError when the reference was computed from other data or another backbone than the one in use."""
    want = {**backbone_meta(backbone), "data_sha256": data_sha256}
    stale = [k for k, v in want.items() if ref.meta.get(k) != v]
    if _precision_differs(ref.meta, want) and "inception_precision" not in stale:
        stale.append("inception_precision")
    if stale:
        raise UserError(
            f"FID reference in {folder}/ is stale ({', '.join(sorted(stale))} changed): rerun `animegan fid-reference`"
        )


def is_current(folder: Path, want: dict[str, Any]) -> bool:
    """True when folder holds a usable reference (load_reference takes it) whose meta agrees with every key of
    `want`; a damaged one is not current, and says why in the log."""
    try:
        meta = load_reference(folder).meta
    except UserError as why:
        log.info("%s", why)
        return False
    return not _precision_differs(meta, want) and all(meta.get(k) == v for k, v in want.items())
