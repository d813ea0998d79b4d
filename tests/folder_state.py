"""Whether a test left a folder untouched, and making one read-only as a platform's input folder is.

Usage (from any test file: tests/ is on sys.path):
    from folder_state import set_writable, tree_state
    set_writable(earlier, False); before = tree_state(earlier)
    ...                                   # the code under test reads the folder
    assert tree_state(earlier) == before  # nothing added, removed, rewritten, touched or re-moded
"""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path


def tree_state(folder: Path) -> dict[str, tuple]:
    """Every entry under folder (hidden ones too): kind, sha256 of its bytes, mtime (ns), mode. Equal: untouched."""
    found = {".": ("dir", None, folder.stat().st_mtime_ns, folder.stat().st_mode)}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else None
        found[str(p.relative_to(folder))] = (stat.S_IFMT(st.st_mode), digest, st.st_mtime_ns, st.st_mode)
    return found


def set_writable(folder: Path, writable: bool) -> None:
    """Add or take away every write bit under folder (links are left alone: chmod would follow them)."""
    for p in [folder, *folder.rglob("*")]:
        mode = p.lstat().st_mode
        if not stat.S_ISLNK(mode):
            p.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
