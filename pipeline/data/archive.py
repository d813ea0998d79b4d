"""Extract the course's faces zip safely, normalised to `<dest>/faces/<files>`.

Usage:
    from pipeline.data.archive import extract_faces
    result = extract_faces(Path("faces.zip"), dest=Path("data/.raw.tmp"), max_entries=100_000,
                           max_total_bytes=2048 << 20)
    result.files, result.bytes, result.layout     # e.g. 71314, 588_000_000, "faces/"

Accepts the course layout `faces/<files>` and the nested `faces/faces/<files>` that some unzips produced; both end
up as `<dest>/faces/<files>`. Refused with a one-line UserError, before anything is written where possible: a file
that is not a zip or is corrupt, absolute paths, `..`, symlinks, device files, FIFOs and sockets, duplicate names,
more than `max_entries` entries, more than `max_total_bytes` uncompressed (checked against the headers first and
again against the bytes actually written, so a lying header cannot get past the bound), any other layout.
`dest` should be a fresh temporary folder: on failure it may hold partial output, which the caller deletes.
"""

from __future__ import annotations

import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipeline.core.errors import UserError, one_line

LAYOUTS = ("faces/faces/", "faces/")  # longest first: the nested layout also starts with faces/
IGNORED_PREFIXES = ("__MACOSX/",)  # resource forks that macOS's zip tool adds; never images
CHUNK = 1 << 20


@dataclass(frozen=True)
class Extracted:
    files: int
    bytes: int
    layout: str


def extract_faces(
    zip_path: Path, dest: Path, max_entries: int, max_total_bytes: int, source: str | None = None
) -> Extracted:
    """Check every entry of `zip_path`, then write its files under `dest/faces/`; messages name it as `source`."""
    source = source or Path(zip_path).name
    try:
        with zipfile.ZipFile(zip_path) as zf:
            infos = zf.infolist()
            if len(infos) > max_entries:
                raise UserError(f"archive has {len(infos)} entries, more than data.max_entries={max_entries}")
            files = [i for i in infos if _check_entry(i) and not i.is_dir()]
            layout = _layout(files)
            declared = sum(i.file_size for i in files)
            if declared > max_total_bytes:
                raise UserError(
                    f"archive would unpack to {declared} bytes, more than data.max_total_mb allows ({max_total_bytes})"
                )
            written = _write_all(zf, files, layout, Path(dest) / "faces", max_total_bytes)
    except UserError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError) as e:
        raise UserError(f"{source}: not a readable zip archive ({_one_line(e)})") from None
    except (NotImplementedError, RuntimeError) as e:  # unsupported compression method, encrypted entries
        raise UserError(f"{source}: cannot extract ({_one_line(e)})") from None
    except OSError as e:
        raise UserError(f"cannot extract {source}: {e.strerror or _one_line(e)}") from None
    return Extracted(files=len(files), bytes=written, layout=layout)


def _check_entry(info: zipfile.ZipInfo) -> bool:
    """Raise on an unsafe entry; return False for entries that are skipped (macOS metadata)."""
    name = info.filename
    if name.startswith(IGNORED_PREFIXES):
        return False
    # Backslashes count as separators too: a zip made on Windows may use them, and Windows would honour them.
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise UserError(f"archive entry {name!r} has an absolute path: refused")
    if ".." in parts:
        raise UserError(f"archive entry {name!r} climbs out of the folder with '..': refused")
    if "\0" in name:
        raise UserError(f"archive entry {name!r} has a NUL byte in its name: refused")
    mode = info.external_attr >> 16  # the Unix mode, when the zip was made on Unix
    if stat.S_ISLNK(mode):
        raise UserError(f"archive entry {name!r} is a symbolic link: refused")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        raise UserError(f"archive entry {name!r} is a device file, FIFO or socket: refused")
    return True


def _layout(files: list[zipfile.ZipInfo]) -> str:
    if not files:
        raise UserError("archive holds no files (expected faces/0.jpg ..)")
    for prefix in LAYOUTS:
        if all(i.filename.startswith(prefix) and len(i.filename) > len(prefix) for i in files):
            return prefix
    stray = next(i.filename for i in files if not i.filename.startswith("faces/"))
    raise UserError(f"archive layout not recognised: expected faces/<files> or faces/faces/<files>, found {stray!r}")


def _write_all(zf: zipfile.ZipFile, files: list[zipfile.ZipInfo], layout: str, out_dir: Path, limit: int) -> int:
    out_dir.mkdir(parents=True, exist_ok=False)
    written = 0
    for info in files:
        target = out_dir.joinpath(*PurePosixPath(info.filename[len(layout) :]).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # "x": a duplicate name in the archive must not silently replace the first copy.
            with zf.open(info) as src, open(target, "xb") as out:
                while chunk := src.read(CHUNK):
                    written += len(chunk)
                    if written > limit:
                        raise UserError(
                            f"archive unpacks to more than data.max_total_mb allows ({limit} bytes) "
                            "although its headers said less: refused"
                        )
                    out.write(chunk)
        except FileExistsError:
            raise UserError(f"archive entry {info.filename!r} appears twice: refused") from None
    return written


def _one_line(e: Exception) -> str:
    return one_line(e) or type(e).__name__
