"""A manifest for every cache one stage writes for another: the sha256 of each of its files and what it was made from.

Usage:
    from pipeline.core.manifest import check_manifest, write_manifest
    write_manifest(folder, ["stats.npz", "meta.json"], made_from={"data_sha256": digest, "count": 1000})
    problem = check_manifest(folder, made_from={"data_sha256": digest})   # None: every file hashes as recorded
    problem.reason            # one line: "stats.npz changed since it was written", "made from other data_sha256", ...
    problem.files, problem.keys                           # the files that failed, the made_from keys that differ
    raise UnusableCache(problem.reason)                   # what a reader raises for its caller to warn or refuse
    check_manifest(folder, made_from={...}, only=["afd_real.json"])    # just these files
    is_number(value, 0.0, 1.0)                            # a real number (not a bool) within [lo, hi]

The writer calls write_manifest inside the folder it builds aside (pipeline.core.atomic.staged_outputs), so the
manifest is swapped in with the files it describes. A reader calls check_manifest before it opens a file: a
truncated, byte-flipped or replaced file, a cache made from other faces or settings, or a folder without a
manifest (older code) all give a Mismatch, never an exception; the reader then warns and recomputes, or refuses in
one line naming the stage to rerun. `made_from` holds JSON values: the hash of faces.npy as the clean stage records
it (pipeline.core.hashing.array_sha256), the params the cache depends on, the format of the code that made it. A
reader compares only the keys it passes. Hashing reads every listed file once (MANIFEST_FILE itself is not
listed): cheap next to the faces, which are never hashed here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.hashing import sha256_file

MANIFEST_FILE = "manifest.json"
FORMAT = 1


class UnusableCache(Exception):
    """A cache that cannot be used as it is (absent, damaged, made from other inputs, a value out of range): the
    message says why in one line. Readers that recompute catch it and warn; the owning stage rebuilds."""


@dataclass(frozen=True)
class Mismatch:
    reason: str  # one line, for a warning or an error message
    files: tuple[str, ...] = ()  # listed files that are missing or hash otherwise
    keys: tuple[str, ...] = ()  # made_from keys whose recorded value differs


def write_manifest(folder: Path, files: list[str], made_from: dict[str, Any]) -> None:
    folder = Path(folder)
    manifest = {
        "format": FORMAT,
        "files": {name: sha256_file(folder / name) for name in sorted(files)},
        "made_from": _plain(made_from),
    }
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest, or None when it is absent, unreadable or not in this format."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    well_formed = (
        isinstance(manifest, dict) and manifest.get("format") == FORMAT
        and isinstance(manifest.get("files"), dict) and isinstance(manifest.get("made_from"), dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in manifest["files"].items())
    )  # fmt: skip
    return manifest if well_formed else None


def check_manifest(
    folder: Path, made_from: dict[str, Any] | None = None, only: list[str] | None = None
) -> Mismatch | None:
    """None when the folder's manifest lists every file of `only` (default: all it lists), each hashes as recorded,
    and it records each key of `made_from` with that value; else what is wrong."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        state = "no" if not (folder / MANIFEST_FILE).exists() else "an unreadable"
        return Mismatch(f"{state} {MANIFEST_FILE} in {folder}/ (written by older code, or damaged)")
    recorded, want = manifest["files"], _plain(made_from or {})
    keys = tuple(k for k, v in want.items() if manifest["made_from"].get(k) != v)
    if keys:
        return Mismatch(f"{folder}/ was made from other {', '.join(keys)}", keys=keys)
    names = list(recorded) if only is None else only
    bad = tuple(name for name in names if name not in recorded or _sha256(folder / name) != recorded[name])
    if bad:
        return Mismatch(f"{', '.join(bad)} in {folder}/ changed since it was written (or is missing)", files=bad)
    return None


def is_number(value: Any, lo: float = -math.inf, hi: float = math.inf, integer: bool = False) -> bool:
    """True for a finite int or float (never a bool) within [lo, hi]; `integer`: an int only."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        return False
    return math.isfinite(value) and lo <= value <= hi


def _sha256(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def _plain(value: dict[str, Any]) -> dict[str, Any]:
    """As JSON reads it back (tuples as lists), so a value compares equal to its recorded self."""
    return json.loads(json.dumps(value, sort_keys=True))
