"""Stage `detector`: train the `anime` face detector on the clean faces; write its weights, meta and metrics.

Usage:
    animegan detector [--set detector.epochs=5]      # or: dvc repro detector

Reads <paths.clean>/faces.npy. Writes <paths.detector>/ (detector.pt, meta.json, holdout.npy: the held-out face
indices, from which the real faces for afd_real are drawn; afd_real.json: the detector's rate on
eval.afd.real_count of them, under the eval speed options, which evaluate reads instead of measuring it;
manifest.json: the sha256 of each and what they were made from, the faces' hash first, which evaluate checks) and
<paths.metrics>/detector.json (held-out recall, false-positive rate per negative kind, threshold, training time)
for `dvc metrics diff`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.core.atomic import json_text, remove_stale_temporaries, staged_outputs
from pipeline.core.config import Params
from pipeline.core.device import resolve_device
from pipeline.core.hashing import array_sha256
from pipeline.core.manifest import write_manifest
from pipeline.core.outputs import DETECTOR_METRICS_FILE
from pipeline.core.speed import resolve_speed
from pipeline.data.clean import clean_faces_file, load_clean_faces
from pipeline.metrics.detector.afd_real import AFD_REAL_FILE, afd_real_record
from pipeline.metrics.detector.model import HOLDOUT_FILE, META_FILE, WEIGHTS_FILE, load_detector_from, save_detector
from pipeline.metrics.detector.training import fit_detector


def execute(params: Params) -> None:
    target, metrics_path = Path(params.paths.detector), Path(params.paths.metrics) / DETECTOR_METRICS_FILE
    device = resolve_device(params.device)  # first: a device that cannot run stops before any work
    remove_stale_temporaries(target, metrics_path)
    faces = load_clean_faces(params.paths.clean)
    data_sha256 = array_sha256(clean_faces_file(params.paths.clean))
    result = fit_detector(faces, params.detector, device=device)

    with staged_outputs() as out:  # the detector folder and its metrics change together or not at all
        folder = out.folder(target)
        digest = save_detector(folder, result.model, result.meta)
        np.save(folder / HOLDOUT_FILE, result.split.holdout)
        # afd_real depends only on the faces and this detector: measured once here, as evaluate would load it
        detector = load_detector_from(folder, device, resolve_speed(params.eval, device))
        record = afd_real_record(detector, faces, params.eval.afd.real_count)
        (folder / AFD_REAL_FILE).write_text(json_text(record), encoding="utf-8")
        made_from = {"data_sha256": data_sha256, "faces": len(faces), "detector": params.detector.model_dump()}
        write_manifest(folder, [WEIGHTS_FILE, META_FILE, HOLDOUT_FILE, AFD_REAL_FILE], made_from)
        metrics = {**result.metrics, "weights_sha256": digest}
        out.file(metrics_path).write_text(json_text(metrics), encoding="utf-8")
