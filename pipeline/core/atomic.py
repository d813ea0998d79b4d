"""Write files and folders so that a crash never leaves them half-written, and a stage's outputs change together.

Usage:
    from pipeline.core.atomic import atomic_path, atomic_write_text, replace_dir, staged_outputs
    from pipeline.core.atomic import remove_stale_temporaries

    remove_stale_temporaries(Path("samples"), Path("submission.tgz"))  # what a killed earlier run left behind
    with atomic_path(Path("models/generator.pt")) as tmp:  # write to tmp; renamed over the target on success
        tmp.write_bytes(torch_bytes(state))
    atomic_write_text(Path("metrics/data.json"), json_text)
    replace_dir(new_folder, Path("data/raw"))          # swap a fully built folder into place
    with staged_outputs() as out:                      # several outputs: all written first, then all swapped in
        write_jpegs(images, out.folder(Path("samples"), ours=is_numbered_jpeg))
        out.file(Path("metrics/sample.json")).write_text(json_text(metrics))

Each writes into a temporary name in the target's own folder (same filesystem, so `os.replace` is atomic)
and removes the temporary on any failure, leaving the old target untouched. A folder is only swapped away when
every entry in it is one the stage writes (`ours`), so a mistaken output path never deletes someone else's files.
Temporaries are named `.<target name>.<8 random characters>[.<kind>].tmp`; a kill -9 can leave them behind, and
remove_stale_temporaries() (called by each stage when it starts) deletes them. The writing process holds an flock on
each temporary until it is renamed or removed (the kernel drops it when the process dies), and the cleanup skips
a locked one: it never deletes a file that a live process, another trainer say, is still writing. A full disk, a
too-large file or a read-only folder while writing becomes a one-line UserError naming the file (see disk_errors).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.core.errors import UserError

TEMP_SUFFIX = ".tmp"
# errors that mean "this file cannot be written here", which the user fixes (space, quota, permissions), not a bug
DISK_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for this filesystem or the file size limit (ulimit -f)",
    errno.EROFS: "read-only filesystem",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


@contextlib.contextmanager
def disk_errors(target: Path | str) -> Iterator[None]:
    """Turn an OSError of DISK_ERRORS raised inside the block into a one-line UserError naming the file (`target`
    when the error names none)."""
    try:
        yield
    except OSError as e:
        if e.errno not in DISK_ERRORS:
            raise
        where = e.filename if e.filename else target
        raise UserError(f"cannot write {where}: {DISK_ERRORS[e.errno]}; nothing was replaced") from None


def make_temp_file(target: Path, kind: str = "") -> Path:
    """A new empty file `.<name>.<random>[.<kind>].tmp` beside `target`, with the permissions of a normal file."""
    target = Path(target)
    with disk_errors(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=_kind(kind) + TEMP_SUFFIX, dir=target.parent)
        os.close(fd)
        tmp = Path(name)
        tmp.chmod(0o666 & ~_umask())  # mkstemp makes it private; the result should look like any file the user writes
    return tmp


def remove_stale_temporaries(*targets: Path) -> list[Path]:
    """Delete the temporaries (files and folders) that a killed write of each target left beside it.

    A kill inside replace_dir's two renames can leave the target missing and its old copy aside: that copy is
    put back rather than deleted. Returns what was removed."""
    removed = []
    for target in map(Path, targets):
        if not target.parent.is_dir():
            continue
        pattern = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}(\.[a-z]+)?{re.escape(TEMP_SUFFIX)}")
        stale = sorted(p for p in target.parent.iterdir() if pattern.fullmatch(p.name))
        for path in stale:
            if _in_use(path):
                continue  # a live process is writing it
            if path.name.endswith(".old" + TEMP_SUFFIX) and not target.exists() and path.is_dir():
                os.replace(path, target)
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(target: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target` in one rename."""
    target = Path(target)
    tmp = make_temp_file(target, suffix.lstrip("."))
    hold_temp(tmp)
    try:
        with disk_errors(target):
            yield tmp
            _fsync_file(tmp)
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
        release_temp(tmp)


def atomic_write_bytes(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: Path, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


def json_text(obj: object) -> str:
    """Stable JSON (sorted keys, 2-space indent, trailing newline) so equal content gives equal bytes."""
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def atomic_write_json(target: Path, obj: object) -> None:
    atomic_write_text(target, json_text(obj))


def torch_bytes(obj: Any) -> bytes:
    """torch.save into memory: written with our own write, a full disk is an OSError (see disk_errors), not the
    RuntimeError torch's zip writer turns it into."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def temp_dir_beside(target: Path) -> Path:
    """A fresh empty folder next to `target`, to build its replacement in."""
    target = Path(target)
    with disk_errors(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent))
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
        old = target.with_name(f".{target.name}.{secrets.token_hex(4)}.old{TEMP_SUFFIX}")
        os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class StagedOutputs:
    """The outputs of one stage, each written to a temporary beside its target, swapped in together by commit()."""

    def __init__(self) -> None:
        self._files: list[tuple[Path, Path]] = []
        self._folders: list[tuple[Path, Path, Ours | None]] = []

    def file(self, target: Path, kind: str = "") -> Path:
        """A temporary file to write `target`'s new content into."""
        tmp = make_temp_file(Path(target), kind)
        hold_temp(tmp)
        self._files.append((tmp, Path(target)))
        return tmp

    def folder(self, target: Path, ours: Ours | None = None) -> Path:
        """An empty temporary folder to build `target`'s new content in (`ours`: see check_replaceable)."""
        tmp = temp_dir_beside(Path(target))
        hold_temp(tmp)
        self._folders.append((tmp, Path(target), ours))
        return tmp

    def commit(self) -> None:
        """Check every folder can be replaced and flush every file first, so the renames are all that is left."""
        for tmp, target, ours in self._folders:
            check_replaceable(tmp, target, ours)
        for tmp, target in self._files:
            with disk_errors(target):
                _fsync_file(tmp)
        for tmp, target in self._files:
            os.replace(tmp, target)
        for tmp, target, ours in self._folders:
            replace_dir(tmp, target, ours)

    def discard(self) -> None:
        for tmp, _ in self._files:
            tmp.unlink(missing_ok=True)
            release_temp(tmp)
        for tmp, _, _ in self._folders:
            shutil.rmtree(tmp, ignore_errors=True)
            release_temp(tmp)


@contextlib.contextmanager
def staged_outputs() -> Iterator[StagedOutputs]:
    """Write a stage's outputs inside the block; they replace the old ones together when it ends without error.
    On any error (a full disk included: a UserError) no output changes and no temporary stays behind."""
    staged = StagedOutputs()
    try:
        with disk_errors("this stage's outputs"):
            yield staged
            staged.commit()
    finally:
        staged.discard()


_HELD: dict[str, int] = {}  # temporaries this process is writing: path -> the descriptor holding their flock


def hold_temp(path: Path) -> None:
    """Hold an exclusive flock on a temporary (file or folder) this process is about to write, until release_temp,
    so that remove_stale_temporaries sees a live writer. Between the temporary's creation and this lock lie a few
    system calls: a cleanup landing exactly there is the one race left."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # a filesystem without locks: the cleanup cannot tell, as before
        os.close(fd)
        return
    _HELD[str(path)] = fd


def release_temp(path: Path) -> None:
    """Drop the lock on a temporary this process made (after renaming or removing it)."""
    fd = _HELD.pop(str(path), None)
    if fd is not None:
        os.close(fd)


def _in_use(path: Path) -> bool:
    """Whether another open file (of any process, this one too) holds the temporary's flock."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def _kind(kind: str) -> str:
    return f".{kind}" if kind else ""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())
