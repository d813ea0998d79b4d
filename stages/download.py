"""download stage: fetch `data.url`, verify it, and swap the extracted faces into `paths.raw` in one step.

Usage:
    animegan download [--set data.url=file:///path/faces.zip] [--set data.sha256=<64 hex>]
    python -c "from pipeline.core.config import load_params; from stages.download import run; run(load_params())"

Result: `<paths.raw>/faces/<files>` plus `<paths.raw>/SOURCE.json` (url, sha256, bytes, files, layout, pinned,
unpacked_bytes), built in a temporary folder beside it and renamed into place together, so the stamp always
describes the data next to it. Decisions, without ever prompting:
- `data.sha256` pinned and the stamp already records it: nothing to do (no request is made).
- `data.sha256` empty and the stamp records the same `data.url`: nothing to do.
- otherwise download, check the pin (if any), extract, and only then replace the old folder. An empty pin trusts
  what arrived, records its hash, and warns once how to pin it.
- `paths.raw` holding files without a stamp is refused rather than overwritten.
Any failure leaves `paths.raw` exactly as it was and no temporary files behind.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pipeline.core.atomic import json_text, remove_stale_temporaries, staged_outputs
from pipeline.core.config import Params
from pipeline.core.errors import UserError
from pipeline.data.archive import extract_faces
from pipeline.data.fetch import fetched

log = logging.getLogger(__name__)

SOURCE_FILE = "SOURCE.json"


def run(params: Params) -> None:
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

    with fetched(data.url, beside=raw, timeout_s=data.timeout_s) as download:
        if data.sha256 and download.sha256 != data.sha256:
            raise UserError(
                f"checksum mismatch for {data.url}: got sha256 {download.sha256}, data.sha256 pins {data.sha256}"
            )
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
                "sha256": download.sha256,
                "bytes": download.bytes,
                "files": unpacked.files,
                "layout": unpacked.layout,
                "unpacked_bytes": unpacked.bytes,
                "pinned": bool(data.sha256),
            }
            (staging / SOURCE_FILE).write_text(json_text(source), encoding="utf-8")

    log.info("%s: %d files (layout %s) from %s", raw, unpacked.files, unpacked.layout, data.url)
    if not data.sha256:
        log.warning(
            "data was not checked against a known hash; to pin it, set `data.sha256: %s` in params.yaml",
            download.sha256,
        )


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
