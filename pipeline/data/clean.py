"""Turn the raw face files into one uint8 array of equal-sized RGB faces, and say what happened to every file.

Usage:
    from pipeline.data.clean import clean_faces, data_metrics, read_source_info
    result = clean_faces(Path("data/raw/faces"), out_dir, image_size=64, min_side=32,
                         max_pixels=4096 * 4096, resample="lanczos")
    # out_dir/faces.npy      uint8 (result.kept, 64, 64, 3), rows in numeric file order (0.jpg, 1.jpg, .., 10.jpg)
    # out_dir/manifest.jsonl one JSON line per source file: kept (with its row index) or the reason it was dropped
    metrics = data_metrics(result, read_source_info(Path("data/raw")))

Files are read in numeric order of their stem (`2.jpg` before `10.jpg`; names that are not numbers come after,
by name). Each file is dropped with the first reason that applies, checked in this order:
    empty             zero bytes
    not_image         Pillow cannot identify it
    too_large         width * height > max_pixels, read from the header before any pixel is decoded (decompression
                      bombs; Pillow's own DecompressionBombError lands here too)
    too_small         short side < min_side
    corrupt           the full decode fails (truncated or damaged data: truncated images are never padded)
    unsupported_mode  a pixel mode with no faithful RGB conversion (float images, premultiplied "La")
    duplicate         the decoded RGB pixels (at original size) equal an earlier kept file's; `duplicate_of` names it
Grayscale, 16-bit grayscale (scaled by 1/256, not clipped), palette and CMYK images are converted to RGB. Images with
an alpha channel (RGBA, LA, PA, or a palette/grey transparency key) are composited over opaque white before
conversion (ALPHA_POLICY): anime faces are drawn on light backgrounds, and black would invent dark halos. A
non-square image is centre-cropped to a square (CROP_POLICY) before the resize, so faces are never stretched.
EXIF orientation is not applied (the course images carry none).

Pixel memory stays flat in the number of files: faces are decoded one at a time and appended to the .npy as they
come. What grows is bookkeeping of about 0.2 KB per file (the sorted names, and a pixel hash per kept face for the
duplicate check): about 12 MB for 50,000 files, against 600 MB for the 64 px array itself (bench/speed/clean.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL
from PIL import Image, UnidentifiedImageError, features

from pipeline.core.errors import UserError, one_line
from pipeline.core.npy_stream import NpyRowWriter
from pipeline.core.progress import progress

log = logging.getLogger(__name__)

FACES_FILE = "faces.npy"
MANIFEST_FILE = "manifest.jsonl"
SOURCE_FILE = "SOURCE.json"  # written by the download stage beside faces/
FACES_DIR = "faces"
REASONS = ("empty", "not_image", "too_large", "too_small", "corrupt", "unsupported_mode", "duplicate")
ALPHA_POLICY = "composited over opaque white (255, 255, 255) before conversion to RGB"
CROP_POLICY = "centre square crop of non-square images, then resize"
RESAMPLE = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "box": Image.Resampling.BOX,
}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa"}


class Dropped(Exception):
    """A file that is not kept; `reason` is one of REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class Face:
    """One decoded, kept-so-far face: its original mode and size, its pixel hash, and the resized pixels."""

    mode: str
    size: tuple[int, int]
    alpha: bool
    digest: bytes
    pixels: np.ndarray


@dataclass
class CleanResult:
    files: int
    kept: int
    image_size: int
    resample: str
    sha256: str  # of the array's raw bytes, C order
    dropped: dict[str, int] = field(default_factory=dict)
    converted: dict[str, int] = field(default_factory=dict)  # original mode -> count, for kept non-RGB files
    alpha_flattened: int = 0


def clean_faces_file(clean_dir: str | Path) -> Path:
    """<clean_dir>/faces.npy, which every stage after clean reads; a one-line UserError while it is missing."""
    path = Path(clean_dir) / FACES_FILE
    if not path.is_file():
        raise UserError(
            f"clean faces not found: {path} (run the clean stage first: `animegan clean` or `dvc repro clean`)"
        )
    return path


def load_clean_faces(clean_dir: str | Path, image_size: int | None = None, mmap: bool = True) -> np.ndarray:
    """clean_faces_file's array, checked: uint8 (N, S, S, 3) with N >= 1 (and S = image_size when given), memory-
    mapped unless mmap is False; a one-line UserError for a truncated, foreign or wrong-shaped file."""
    path = clean_faces_file(clean_dir)
    rerun = "rerun the clean stage (`animegan clean`, or delete it and `dvc repro clean`)"
    try:
        faces = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise UserError(f"{path} is not a readable .npy array ({one_line(e, 120)}): {rerun}") from None
    if not isinstance(faces, np.ndarray):  # an .npz archive under the .npy name
        faces.close()
        raise UserError(f"{path} is not a .npy array: {rerun}")
    size = image_size or (faces.shape[1] if faces.ndim == 4 else 0)
    if faces.dtype != np.uint8 or faces.ndim != 4 or faces.shape[1:] != (size, size, 3) or len(faces) == 0:
        raise UserError(f"{path} holds {faces.dtype} {faces.shape}, not uint8 (N >= 1, {size or 'S'}, "
                        f"{size or 'S'}, 3) faces{' for data.image_size' if image_size else ''}: {rerun}")  # fmt: skip
    return faces


def numeric_order_key(name: str) -> tuple[int, int, str]:
    stem = Path(name).stem
    if stem.isdigit():
        return (0, int(stem), name)
    return (1, 0, name)


def list_faces(folder: Path) -> list[str]:
    """Names of the regular files in `folder`, in numeric order; UserError when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"no face folder at {folder}: run `animegan download` (or `dvc repro download`) first")
    names, others = [], 0
    with os.scandir(folder) as entries:
        for e in entries:
            if e.is_file():
                names.append(e.name)
            else:
                others += 1
    if others:
        log.warning("%s: skipped %d entries that are not files (sub-folders are not searched)", folder, others)
    if not names:
        raise UserError(f"{folder} holds no files: run `animegan download` (or `dvc repro download`) again")
    return sorted(names, key=numeric_order_key)


def decode_rgb(path: Path, max_pixels: int, min_side: int = 1) -> tuple[Image.Image, str, bool]:
    """Decode one image file to RGB (with its original mode and whether it had alpha); its size is checked against
    max_pixels from the header, before any pixel is decoded. Raise Dropped (never anything else) for a bad file."""
    if path.stat().st_size == 0:
        raise Dropped("empty")
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise Dropped("too_large", f"{w}x{h}")
            if min(w, h) < min_side:
                raise Dropped("too_small", f"{w}x{h}")
            im.load()
            return to_rgb(im), im.mode, has_alpha(im.mode, im.info)
    except Dropped:
        raise
    except Image.DecompressionBombError as e:
        raise Dropped("too_large", one_line(e)) from None
    except UnidentifiedImageError:
        raise Dropped("not_image") from None
    except Exception as e:  # noqa: BLE001 - damaged files make Pillow's decoders raise many types
        raise Dropped("corrupt", f"{type(e).__name__}: {one_line(e)}") from None


def decode_face(path: Path, image_size: int, min_side: int, max_pixels: int, resample: str) -> Face:
    """Decode, check, convert to RGB and resize one file; raise Dropped (never anything else) for a bad file."""
    rgb, mode, alpha = decode_rgb(path, max_pixels, min_side)
    w, h = rgb.size
    digest = hashlib.sha256(f"{w}x{h}:".encode() + rgb.tobytes()).digest()
    square = centre_square(rgb)
    if square.size != (image_size, image_size):
        square = square.resize((image_size, image_size), resample=RESAMPLE[resample])
    return Face(mode=mode, size=(w, h), alpha=alpha, digest=digest, pixels=np.asarray(square, dtype=np.uint8))


def to_rgb(im: Image.Image) -> Image.Image:
    """Any decoded image -> a new RGB image (alpha flattened over white); Dropped('unsupported_mode') if unfaithful.

    Always a new image, never `im` itself, so it outlives closing the file `im` was read from.
    """
    if im.mode == "RGB":
        return im.copy()
    if im.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        # Pillow's own I;16 -> RGB conversion clips at 255 instead of scaling
        grey = np.clip(np.asarray(im).astype(np.int64), 0, 65535) >> 8
        return Image.fromarray(grey.astype(np.uint8)).convert("RGB")
    if im.mode == "F":
        raise Dropped("unsupported_mode", "F (floating point pixels have no fixed range)")
    try:
        if has_alpha(im.mode, im.info):
            rgba = im.convert("RGBA")
            white = Image.new("RGBA", im.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return im.convert("RGB")
    except ValueError as e:
        raise Dropped("unsupported_mode", f"{im.mode}: {one_line(e)}") from None


def has_alpha(mode: str, info: dict[str, Any]) -> bool:
    return mode in _ALPHA_MODES or "transparency" in info


def centre_square(im: Image.Image) -> Image.Image:
    w, h = im.size
    if w == h:
        return im
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return im.crop((left, top, left + s, top + s))


def clean_faces(
    src: Path, out_dir: Path, *, image_size: int, min_side: int, max_pixels: int, resample: str
) -> CleanResult:
    """Clean every file of `src` into out_dir/faces.npy and out_dir/manifest.jsonl (out_dir: a fresh folder)."""
    src, out_dir = Path(src), Path(out_dir)
    if resample not in RESAMPLE:
        raise UserError(f"data.resample: unknown filter {resample!r} (choose from {', '.join(RESAMPLE)})")
    names = list_faces(src)
    seen: dict[bytes, str] = {}
    dropped: Counter[str] = Counter()
    converted: Counter[str] = Counter()
    alpha_flattened = 0
    with (
        NpyRowWriter(out_dir / FACES_FILE, row_shape=(image_size, image_size, 3)) as out,
        open(out_dir / MANIFEST_FILE, "w", encoding="utf-8") as manifest,
    ):
        for name in progress(names, desc="clean", unit="img"):
            entry: dict[str, Any] = {"name": name}
            try:
                face = decode_face(src / name, image_size, min_side, max_pixels, resample)
                if face.digest in seen:
                    raise Dropped("duplicate", seen[face.digest])
            except Dropped as d:
                dropped[d.reason] += 1
                entry.update(kept=False, reason=d.reason)
                if d.reason == "duplicate":
                    entry["duplicate_of"] = d.detail
                elif d.detail:
                    entry["detail"] = d.detail
            else:
                seen[face.digest] = name
                entry.update(kept=True, index=out.count, mode=face.mode, size=list(face.size))
                out.append(face.pixels)
                if face.mode != "RGB":
                    converted[face.mode] += 1
                if face.alpha:
                    alpha_flattened += 1
            manifest.write(json.dumps(entry, sort_keys=True) + "\n")
    if out.count == 0:
        why = ", ".join(f"{n} {r}" for r, n in sorted(dropped.items()))
        raise UserError(f"none of the {len(names)} files in {src} is a usable face image ({why})")
    result = CleanResult(
        files=len(names),
        kept=out.count,
        image_size=image_size,
        resample=resample,
        sha256=out.sha256,
        dropped={r: dropped.get(r, 0) for r in REASONS},
        converted=dict(sorted(converted.items())),
        alpha_flattened=alpha_flattened,
    )
    log.info("kept %d of %d files (%s)", result.kept, result.files, _summary(result.dropped))
    return result


def read_source_info(raw_dir: Path) -> dict[str, Any]:
    """url, sha256, bytes and pinned of the archive, from raw_dir/SOURCE.json; None for whatever is missing."""
    path = Path(raw_dir) / SOURCE_FILE
    info: dict[str, Any] = {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.warning("%s not found: the source archive's hash is recorded as null", path)
    except (OSError, ValueError) as e:
        log.warning("%s unreadable (%s): the source archive's hash is recorded as null", path, one_line(e))
    if not isinstance(info, dict):
        info = {}
    return {key: info.get(key) for key in ("url", "sha256", "bytes", "pinned")}


def data_metrics(result: CleanResult, source: dict[str, Any]) -> dict[str, Any]:
    """The content of metrics/data.json: what went in, what came out, and how."""
    return {
        "files": result.files,
        "kept": result.kept,
        "dropped": sum(result.dropped.values()),
        "dropped_by_reason": result.dropped,
        "converted_to_rgb": result.converted,
        "alpha_flattened": result.alpha_flattened,
        "alpha_policy": ALPHA_POLICY,
        "crop_policy": CROP_POLICY,
        "image_size": result.image_size,
        "shape": [result.kept, result.image_size, result.image_size, 3],
        "resample": result.resample,
        "resample_filter": f"PIL.Image.Resampling.{RESAMPLE[result.resample].name}",
        "sha256": result.sha256,
        "source": source,
        "versions": decoder_versions(),
    }


def decoder_versions() -> dict[str, str | None]:
    """What decides the decoded and resized pixels, hence the array's hash, beyond the files and params."""
    return {
        "pillow": PIL.__version__,
        "libjpeg_turbo": features.version("libjpeg_turbo"),
        "zlib": features.version("zlib"),
        "numpy": np.__version__,
    }


def _summary(dropped: dict[str, int]) -> str:
    parts = [f"{n} {r}" for r, n in dropped.items() if n]
    return "dropped " + ", ".join(parts) if parts else "none dropped"

