"""download stage: fetch `data.url` (a zip, or a folder of images), verify it, and swap the faces into `paths.raw`.

Usage:
    animegan download [--set data.url=file:///path/faces.zip] [--set data.sha256=<64 hex>]
    animegan download --set data.url=/kaggle/input/anime-faces      # a folder: faces/<images>, faces/faces/.. or
                                                                     # the images themselves; copied, never changed
    from stages.download import execute; execute(load_params("params.yaml"))

Result: `<paths.raw>/faces/<files>` plus `<paths.raw>/SOURCE.json` (url, kind, sha256, bytes, files, layout, pinned,
unpacked_bytes), built in a temporary folder beside it and renamed into place together, so the stamp always
describes the data next to it. `sha256` is the zip file's, or for a folder its manifest hash
(pipeline/data/image_folder.py: the sha256 of `sha256sum`'s lines for its images, sorted by name). Decisions,
without ever prompting:
- `data.sha256` pinned and the stamp already records it: nothing to do (no request is made, the folder is not read).
- `data.sha256` empty and the stamp records the same `data.url`: nothing to do.
- otherwise download (or copy the folder), check the pin (if any), extract, and only then replace the old folder. An
  empty pin trusts what arrived, records its hash, and warns once how to pin it.
- `paths.raw` holding files without a stamp is refused rather than overwritten (and params refuse a folder source
  that lies inside `paths.raw` or holds it: pipeline.core.config.check_output_paths).
Any failure leaves `paths.raw` exactly as it was and no temporary files behind; a folder source is only read.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pipeline.core.atomic import json_text, remove_stale_temporaries, staged_outputs
from pipeline.core.config import DataParams, Params
from pipeline.core.errors import UserError
from pipeline.data.archive import extract_faces
from pipeline.data.fetch import fetched, local_path
from pipeline.data.image_folder import copy_faces_folder

log = logging.getLogger(__name__)

SOURCE_FILE = "SOURCE.json"


def execute(params: Params) -> None:
    data = params.data
    raw = Path(params.paths.raw)
    remove_stale_temporaries(raw)  # a killed download leaves its copy and staging folder beside raw
    stamp = read_source(raw)
    if stamp is None and raw.exists() and (not raw.is_dir() or any(raw.iterdir())):
        raise UserError(
            f"{raw} holds files but no readable {SOURCE_FILE}, so this stage did not make it: "
            "move it aside (or point data.url at your zip) and run again"
        )
    if stamp is not None and _up_to_date(stamp, data.url, data.sha256):
        log.info("%s already holds %s (sha256 %s): nothing to do", raw, stamp.get("url"), stamp.get("sha256"))
        return

    folder = local_path(data.url)
    if folder is not None and folder.is_dir():
        source = _from_folder(data, raw, folder)
    else:
        source = _from_archive(data, raw)
    log.info("%s: %d files (layout %s) from %s", raw, source["files"], source["layout"], data.url)
    if not data.sha256:
        log.warning(
            "data was not checked against a known hash; to pin it, set `data.sha256: %s` in params.yaml",
            source["sha256"],
        )


def _from_archive(data: DataParams, raw: Path) -> dict[str, Any]:
    """Download the zip, check the pin, extract it into a staging folder and swap that into `raw`."""
    with fetched(data.url, beside=raw, timeout_s=data.timeout_s) as download:
        _check_pin(data, download.sha256)
        with staged_outputs() as out:
            staging = out.folder(raw)
            unpacked = extract_faces(
                download.path,
                staging,
                max_entries=data.max_entries,
                max_total_bytes=data.max_total_mb << 20,
                source=data.url,
            )
            source = {
                "url": data.url,
                "kind": "zip",
                "sha256": download.sha256,
                "bytes": download.bytes,
                "files": unpacked.files,
                "layout": unpacked.layout,
                "unpacked_bytes": unpacked.bytes,
                "pinned": bool(data.sha256),
            }
            (staging / SOURCE_FILE).write_text(json_text(source), encoding="utf-8")
    return source


def _from_folder(data: DataParams, raw: Path, folder: Path) -> dict[str, Any]:
    """Copy the folder's images into a staging folder (hashing them), check the pin, and swap it into `raw`."""
    with staged_outputs() as out:
        staging = out.folder(raw)
        copied = copy_faces_folder(folder, staging, data.max_entries, data.max_total_mb << 20)
        _check_pin(data, copied.sha256)
        source = {
            "url": data.url,
            "kind": "folder",
            "sha256": copied.sha256,
            "bytes": copied.bytes,
            "files": copied.files,
            "layout": copied.layout or "./",
            "unpacked_bytes": copied.bytes,
            "pinned": bool(data.sha256),
        }
        (staging / SOURCE_FILE).write_text(json_text(source), encoding="utf-8")
    return source


def _check_pin(data: DataParams, got: str) -> None:
    if data.sha256 and got != data.sha256:
        raise UserError(f"checksum mismatch for {data.url}: got sha256 {got}, data.sha256 pins {data.sha256}")


def read_source(raw: Path) -> dict[str, Any] | None:
    """The stamp written with `raw`, or None when there is none (or it is unreadable, i.e. not trustworthy)."""
    try:
        stamp = json.loads((Path(raw) / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def _up_to_date(stamp: dict[str, Any], url: str, pinned_sha256: str) -> bool:
    if pinned_sha256:
        return stamp.get("sha256") == pinned_sha256
    return stamp.get("url") == url
