"""sha256 of a file or a .npy array's data, read in blocks so memory does not grow with its size.

Usage:
    from pipeline.core.hashing import array_sha256, sha256_file
    sha256_file(Path("models/generator.pt"))         # -> 64 hex digits
    array_sha256(Path("data/clean/faces.npy"))       # the array's raw bytes, what the clean stage records
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def array_sha256(path: Path) -> str:
    """sha256 of a .npy array's raw bytes in C order (what the clean stage records), without loading it whole."""
    arr = np.load(path, mmap_mode="r")
    digest = hashlib.sha256()
    rows = max(1, (1 << 26) // max(1, arr[0].nbytes if len(arr) else 1))
    for start in range(0, len(arr), rows):
        digest.update(np.ascontiguousarray(arr[start : start + rows]).tobytes())
    return digest.hexdigest()
