"""afd_real of the trained `anime` detector, computed once by the detector stage beside its weights.

Usage:
    from pipeline.metrics.detector.afd_real import real_subset, afd_real_record, cached_afd_real, AFD_REAL_FILE
    real = real_subset(faces, count=500, among=holdout)          # the real faces afd_real is measured on
    record = afd_real_record(detector, faces, count=500)         # {"afd_real", "real_count", "requested", ...}
    record = cached_afd_real(folder, detector, faces, 500, data_sha256)   # the stored record, or None

afd_real (the detector's rate on real clean faces it never trained on) depends only on the clean faces, the
detector and eval.afd.real_count, so `evaluate` need not run the detector over those faces on every call. The
record names the weights hash and the speed options it was measured under; cached_afd_real returns None unless
they and the requested count are the ones evaluate would use, and evaluate then measures it itself. It returns
None with one warning, too, when the file is not the one the detector stage wrote for these faces (its sha256 and
the faces' hash in the folder's manifest, pipeline.core.manifest) or holds a value of the wrong type or range (a
rate outside [0, 1], a count that is not a whole number): never a traceback, never a number it cannot vouch for.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.errors import UserError
from pipeline.core.manifest import check_manifest, is_number

log = logging.getLogger(__name__)

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


def cached_afd_real(
    folder: Path, detector: Any, faces: np.ndarray, count: int, data_sha256: str
) -> dict[str, Any] | None:
    path = Path(folder) / AFD_REAL_FILE
    mismatch = check_manifest(folder, {"data_sha256": data_sha256}, only=[AFD_REAL_FILE])
    problem = mismatch.reason if mismatch else None
    try:
        record = None if problem else json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        problem = f"{path} is unreadable ({type(e).__name__})"
    why = problem or record_problem(record, count)
    if why:
        log.warning("afd_real: the detector stage's %s not used (%s): measuring it here", AFD_REAL_FILE, why)
        return None
    want = {"requested": count, "faces": len(faces), "weights_sha256": getattr(detector, "weights_sha256", None),
            "speed": speed_of(detector)}  # fmt: skip
    if any(record.get(k) != v for k, v in want.items()):
        log.info("afd_real: %s was measured for other settings: measuring it here", path)
        return None
    return record


def record_problem(record: Any, count: int) -> str | None:
    """What makes a record read back unusable (a type or range), or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    rate, real_count = record.get("afd_real"), record.get("real_count")
    if not (rate is None or is_number(rate, 0.0, 1.0)):
        return f"afd_real is {rate!r}, not a rate in [0, 1]"
    if not is_number(real_count, 0, count, integer=True) or (rate is None) != (real_count == 0):
        return f"real_count is {real_count!r}, not the number of faces {rate!r} was measured on"
    return None
