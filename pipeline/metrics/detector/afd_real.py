"""afd_real of the trained `anime` detector, computed once by the detector stage beside its weights.

Usage:
    from pipeline.metrics.detector.afd_real import real_subset, afd_real_record, cached_afd_real, AFD_REAL_FILE
    real = real_subset(faces, count=500, among=holdout)          # the real faces afd_real is measured on
    record = afd_real_record(detector, faces, count=500)         # {"afd_real", "real_count", "requested", ...}
    rate = cached_afd_real(folder, detector, count=500)          # the stored rate, or None when it does not apply

afd_real (the detector's rate on real clean faces it never trained on) depends only on the clean faces, the
detector and eval.afd.real_count, so `evaluate` need not run the detector over those faces on every call. The
record names the weights hash and the speed options it was measured under; cached_afd_real returns None unless
they and the requested count are the ones evaluate would use, and evaluate then measures it itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.errors import UserError

AFD_REAL_FILE = "afd_real.json"


def real_subset(faces: np.ndarray, count: int, among: np.ndarray | None = None) -> np.ndarray:
    """`count` clean faces spread evenly over the array, or over the indices `among` (all when count >= len),
    for afd_real. A trained detector passes the faces it never saw: its rate on training faces flatters it."""
    if among is None:
        if count >= len(faces):
            return np.asarray(faces)
        among = np.arange(len(faces))
    elif len(among) and (among.min() < 0 or among.max() >= len(faces)):
        raise UserError(
            f"the detector's held-out face indices go up to {among.max()} but there are {len(faces)} clean faces: "
            "the clean data changed since the detector was trained; rerun the detector stage"
        )
    among = np.sort(among)
    if count < len(among):
        among = among[np.linspace(0, len(among) - 1, count).round().astype(int)]
    return np.asarray(faces[among])


def speed_of(detector: Any) -> dict[str, bool]:
    speed = getattr(detector, "speed", None)
    return {name: bool(speed is not None and getattr(speed, name)) for name in ("bf16", "compile", "channels_last")}


def afd_real_record(detector: Any, faces: np.ndarray, count: int) -> dict[str, Any]:
    real = real_subset(faces, count, among=detector.unseen_faces)
    rate = float(np.mean(detector.detect(real))) if len(real) else None
    return {
        "afd_real": rate, "real_count": len(real), "requested": count, "faces": len(faces),
        "weights_sha256": detector.weights_sha256, "speed": speed_of(detector),
        "from": "all" if detector.unseen_faces is None else "detector holdout",
    }  # fmt: skip


def cached_afd_real(folder: Path, detector: Any, faces: np.ndarray, count: int) -> dict[str, Any] | None:
    try:
        record = json.loads((Path(folder) / AFD_REAL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    want = {"requested": count, "faces": len(faces), "weights_sha256": getattr(detector, "weights_sha256", None),
            "speed": speed_of(detector)}  # fmt: skip
    if not isinstance(record, dict) or any(record.get(k) != v for k, v in want.items()):
        return None
    return record
