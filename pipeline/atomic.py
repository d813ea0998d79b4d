"""Write files and folders so that a crash never leaves them half-written.

Usage:
    from pipeline.atomic import atomic_path, atomic_write_text, replace_dir

    with atomic_path(Path("models/ckpt.pt")) as tmp:   # write to tmp; renamed over the target on success
        torch.save(state, tmp)
    atomic_write_text(Path("metrics/data.json"), json_text)
    replace_dir(new_folder, Path("data/raw"))          # swap a fully built folder into place

Each writes into a temporary name in the target's own folder (same filesystem, so `os.replace` is atomic)
and removes the temporary on any failure, leaving the old target untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline.errors import UserError


@contextlib.contextmanager
def atomic_path(target: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target` in one rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes it private; the result should look like any file the user writes
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: Path, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_json(target: Path, obj: object) -> None:
    """Stable JSON (sorted keys, 2-space indent, trailing newline) so equal content gives equal bytes."""
    atomic_write_text(target, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def temp_dir_beside(target: Path) -> Path:
    """A fresh empty folder next to `target`, to build its replacement in."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    path.chmod(0o777 & ~_umask())  # mkdtemp makes it private (0700)
    return path


Ours = Callable[[str], bool]


def check_replaceable(new: Path, target: Path, ours: Ours | None = None) -> None:
    """UserError unless `target` is absent or a folder whose every entry the stage writes: a name `new` holds too,
    or one `ours` accepts. Without this a mistaken output path (`paths.samples=data`) would delete what is there."""
    new, target = Path(new), Path(target)
    if not target.exists():
        return
    if not target.is_dir():
        raise UserError(f"{target} is a file, not the folder this stage writes: move it aside or choose another path")
    written = {p.name for p in new.iterdir()}
    foreign = sorted(p.name for p in target.iterdir() if p.name not in written and not (ours and ours(p.name)))
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise UserError(
            f"{target} holds {shown}, which this stage does not write, and would be replaced whole: "
            "move them aside or choose another output path"
        )


def replace_dir(new: Path, target: Path, ours: Ours | None = None) -> None:
    """Move the finished folder `new` to `target`, replacing any old one (after check_replaceable).

    A folder cannot be renamed over a non-empty one, so the old copy is first renamed aside and deleted only
    after the new one is in place: at every moment `target` is either the complete old or the complete new copy
    (with a window of one rename in which it is absent).
    """
    new, target = Path(new), Path(target)
    check_replaceable(new, target, ours)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old.{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())
