"""fid_reference stage: paths.clean/faces.npy -> paths.fid_reference/{stats.npz, meta.json}.

Usage:
    animegan fid-reference [--set eval.fid.reference_count=1000] [--set eval.fid.weights=untrained]
    dvc repro fid_reference
    from stages.fid_reference import execute; execute(load_params("params.yaml"))

Inception statistics of the clean faces (see pipeline.metrics.fid_reference), stored with the data hash and the weights
hash they came from, with the seeded precision/recall subset's features (eval.prdc.reference_count, eval.prdc.seed).
When the folder already holds a reference for the same data, weights and counts, every file as its manifest
records it, the stage keeps it (on CPU the full 71k-face reference takes hours): delete the folder to force a
recomputation. A damaged, foreign or stale one is rebuilt aside and swapped in whole.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.core.atomic import remove_stale_temporaries
from pipeline.core.config import Params
from pipeline.core.device import resolve_device
from pipeline.core.hashing import array_sha256
from pipeline.data.clean import clean_faces_file, load_clean_faces
from pipeline.metrics.fid_reference import backbone_for, backbone_meta, compute_reference, is_current, save_reference

log = logging.getLogger(__name__)


def execute(params: Params) -> None:
    fid, kid, prdc = params.eval.fid, params.eval.kid, params.eval.prdc
    device = resolve_device(params.device)  # first: a device that cannot run stops before any work
    remove_stale_temporaries(Path(params.paths.fid_reference))
    faces = load_clean_faces(params.paths.clean)
    faces_path = clean_faces_file(params.paths.clean)
    data_sha256 = array_sha256(faces_path)
    backbone = backbone_for(params, device)
    folder = Path(params.paths.fid_reference)
    n = len(faces) if fid.reference_count == 0 else min(fid.reference_count, len(faces))
    pool = n if kid.reference_pool == 0 else min(kid.reference_pool, n)
    prdc_count = n if prdc.reference_count == 0 else min(prdc.reference_count, n)
    want = {
        **backbone_meta(backbone), "data_sha256": data_sha256, "count": n, "kid_pool": pool, "kid_seed": kid.seed,
        "prdc_count": prdc_count, "prdc_seed": prdc.seed,
    }  # fmt: skip
    if is_current(folder, want):
        log.info("FID reference in %s is up to date (%d faces); delete it to recompute", folder, n)
        return
    ref = compute_reference(
        backbone, faces, fid.reference_count, fid.batch_size, kid.reference_pool, kid.seed,
        prdc.reference_count, prdc.seed,
    )  # fmt: skip
    save_reference(ref, folder, data_sha256)
    log.info("FID reference of %d faces (%s backbone) written to %s", n, backbone.name, folder)
