"""Copy a folder of face images (the data source as a folder) into `<dest>/faces/<files>`, never touching the source.

Usage:
    from pipeline.data.image_folder import copy_faces_folder
    copied = copy_faces_folder(Path("/kaggle/input/anime-faces"), dest=Path("data/.raw.tmp"), max_entries=100_000,
                               max_total_bytes=2048 << 20)
    copied.files, copied.bytes, copied.layout, copied.sha256     # e.g. 71314, 588_000_000, "faces/", "3f..."

Layouts, as the course zip unpacks (relative to the folder given): the images themselves (`<folder>/*.jpg`, what
Kaggle's `/kaggle/input/<dataset>/faces` holds), `faces/<images>` (the course zip unpacked; Kaggle's
`/kaggle/input/<dataset>`) or `faces/faces/<images>`; each ends up as `<dest>/faces/<files>`. Names starting with
"." and `__MACOSX` folders are skipped (hidden files, macOS metadata), at every level.

The folder's hash (FOLDER_HASH_RULE) is the sha256 of its manifest: one line `<sha256 of the file>  <name>\\n` per
image, sorted by name (byte order), names relative to the image folder. It is what `sha256sum` prints, so
    cd <image folder> && find . -maxdepth 1 -type f ! -name '.*' -printf '%P\\n' | LC_ALL=C sort \\
        | xargs -d '\\n' sha256sum | sha256sum
gives the same hex digest; the layout around the images does not change it.

Refused with a one-line UserError, with nothing written outside `dest`: any other layout (a stray file or folder
beside `faces/`, a folder among the images, a level deeper than `faces/faces/`), a folder without files, symbolic
links, device files, FIFOs and sockets, more than `max_entries` files or `max_total_bytes` in all (checked on the
sizes first and again on the bytes read), and a folder none of whose files is a readable image. Files that are not
(readable) images among good ones are copied: clean drops each with its reason, as for the zip. The source is only
ever opened for reading; the copies are plain copies, not links (a hard link shares the file, so anything that later
changed or chmod-ed data/raw, DVC's cache included, would change the source). `dest` should be a fresh temporary
folder: on failure it may hold partial output, which the caller deletes.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import UserError
from pipeline.data.clean import Dropped, decode_rgb

LAYOUTS = ("", "faces/", "faces/faces/")
IGNORED_FOLDERS = ("__MACOSX",)
FOLDER_HASH_RULE = "sha256 of the lines '<file sha256>  <name>', sorted by name (sha256sum's format)"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Copied:
    files: int
    bytes: int
    layout: str
    sha256: str  # the folder's manifest hash (FOLDER_HASH_RULE)


def copy_faces_folder(src: Path, dest: Path, max_entries: int, max_total_bytes: int) -> Copied:
    """Check `src`'s layout and files, then copy its images to `dest/faces/` while hashing them."""
    src = Path(src)
    folder, layout, names = locate_images(src)
    if len(names) > max_entries:
        raise UserError(f"{folder} holds {len(names)} files, more than data.max_entries={max_entries}")
    declared = sum((folder / name).stat().st_size for name in names)
    if declared > max_total_bytes:
        raise UserError(f"{folder} holds {declared} bytes, more than data.max_total_mb allows ({max_total_bytes})")
    out = Path(dest) / "faces"
    out.mkdir(parents=True, exist_ok=False)
    manifest, written = hashlib.sha256(), 0
    for name in names:
        digest, size = _copy_file(folder / name, out / name, max_total_bytes - written)
        manifest.update(f"{digest}  {name}\n".encode())
        written += size
    if not any(_readable(out / name) for name in names):
        raise UserError(f"none of the {len(names)} files in {folder} is a readable image (data.url={src})")
    return Copied(files=len(names), bytes=written, layout=layout, sha256=manifest.hexdigest())


def locate_images(src: Path) -> tuple[Path, str, list[str]]:
    """The folder holding the images, its layout (one of LAYOUTS) and the images' names, sorted (byte order)."""
    if not src.is_dir():
        raise UserError(f"data.url: {src} is not a folder")
    for layout in LAYOUTS:
        folder = src / layout
        entries = _visible(folder)
        folders = [e for e in entries if e.is_dir(follow_symlinks=False)]
        if not folders:
            return folder, layout, _image_names(folder, entries)
        deeper = layout != LAYOUTS[-1]
        if deeper and len(entries) == 1 and folders[0].name == "faces":
            continue
        # the first folder that may not be there, else the first file beside faces/
        odd = [e for e in folders if e.name != "faces" or not deeper] or [e for e in entries if e not in folders]
        shown = f"{odd[0].name}/" if odd[0] in folders else odd[0].name
        raise UserError(
            f"folder layout not recognised in {src}: expected the images, faces/<images> or faces/faces/<images>, "
            f"found {layout}{shown}"
        )
    raise AssertionError("unreachable: the last layout either returns or raises")


def _visible(folder: Path) -> list[os.DirEntry]:
    """The entries of `folder` sorted by name (byte order), hidden ones and macOS metadata left out."""
    try:
        with os.scandir(folder) as it:
            kept = [e for e in it if not e.name.startswith(".") and e.name not in IGNORED_FOLDERS]
    except OSError as e:
        raise UserError(f"cannot read the folder {folder}: {e.strerror or e}") from None
    return sorted(kept, key=lambda e: e.name.encode())


def _image_names(folder: Path, entries: list[os.DirEntry]) -> list[str]:
    if not entries:
        raise UserError(f"{folder} holds no files (expected the face images, e.g. 0.jpg ..)")
    for e in entries:
        mode = e.stat(follow_symlinks=False).st_mode
        if stat.S_ISLNK(mode):
            raise UserError(f"{folder / e.name} is a symbolic link: refused (copy the images themselves)")
        if not stat.S_ISREG(mode):
            raise UserError(f"{folder / e.name} is a device file, FIFO or socket: refused")
    return [e.name for e in entries]


def _copy_file(src: Path, target: Path, budget: int) -> tuple[str, int]:
    """Copy one file (the source only opened for reading) with its sha256; refuse once more than `budget` bytes came.
    Errors writing the copy are left to the caller's staged outputs (a full disk names the output)."""
    digest, size = hashlib.sha256(), 0
    try:
        inp = open(src, "rb")  # closed by the with below; only the source's errors become "cannot read"
    except OSError as e:
        raise UserError(f"cannot read {src}: {e.strerror or e}") from None
    with inp, open(target, "xb") as out:
        while chunk := _read(inp, src):
            size += len(chunk)
            if size > budget:
                raise UserError(f"{src.parent} holds more than data.max_total_mb allows although its sizes said less")
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


def _read(inp, src: Path) -> bytes:
    try:
        return inp.read(CHUNK)
    except OSError as e:
        raise UserError(f"cannot read {src}: {e.strerror or e}") from None


def _readable(path: Path) -> bool:
    """Whether clean could decode `path` (its size limits aside): the check stops at the first readable file."""
    try:
        decode_rgb(path, max_pixels=1 << 62)
    except Dropped:
        return False
    return True
