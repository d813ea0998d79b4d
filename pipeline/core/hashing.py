"""sha256 of a file, read in 1 MiB blocks so memory does not grow with the file.

Usage:
    from pipeline.core.hashing import sha256_file
    sha256_file(Path("models/generator.pt"))   # -> 64 hex digits
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
