"""The clean library on real files of every kind: what is kept, what is dropped and why, order and determinism."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.core.errors import UserError
from pipeline.data.clean import REASONS, clean_faces, list_faces

SIZE = 32  # output side in these tests; sources are 48 px so every kept face is really resized


def noise_rgb(seed: int, w: int = 48, h: int = 48) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def png_header_only(path: Path, w: int, h: int) -> None:
    """A PNG claiming w x h pixels with almost no data: a decompression bomb's header, harmless to write."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


# name -> expected manifest outcome: "kept" or a drop reason
EXPECTED = {
    "0.jpg": "kept",  # plain RGB JPEG
    "1.png": "kept",  # RGB PNG
    "2.jpg": "kept",  # grayscale (L)
    "3.png": "kept",  # palette (P)
    "4.jpg": "kept",  # CMYK JPEG
    "5.png": "kept",  # RGBA, half transparent
    "6.png": "kept",  # 16-bit grayscale (I;16)
    "7.png": "kept",  # palette with a transparent index
    "8.png": "kept",  # non-square 64 x 48: centre-cropped
    "9.png": "duplicate",  # 1.png's pixels again, re-encoded (different bytes, same decoded pixels)
    "10.png": "duplicate",  # byte copy of 1.png
    "11.jpg": "empty",
    "12.jpg": "not_image",  # text with an image extension
    "13.jpg": "corrupt",  # truncated JPEG
    "14.png": "too_small",  # 16 x 16 < min_side 24
    "15.png": "too_large",  # header says 5000 x 5000 > max_pixels
    "16.png": "too_large",  # header says 20000 x 20000: Pillow's own DecompressionBombError
    "17.tif": "unsupported_mode",  # float pixels
    "18.jpg": "too_small",  # 48 x 16: the short side counts
    "notes.txt": "not_image",
}


@pytest.fixture
def bad_folder(tmp_path: Path) -> Path:
    d = tmp_path / "faces"
    d.mkdir()
    noise_rgb(0).save(d / "0.jpg", quality=95)
    noise_rgb(1).save(d / "1.png")
    noise_rgb(2).convert("L").save(d / "2.jpg")
    noise_rgb(3).quantize(16).save(d / "3.png")
    noise_rgb(4).convert("CMYK").save(d / "4.jpg")
    rgba = noise_rgb(5).convert("RGBA")
    alpha = np.zeros((48, 48), np.uint8)
    alpha[:, 24:] = 255  # left half fully transparent -> must come out white
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(d / "5.png")
    Image.fromarray(np.arange(48 * 48, dtype=np.uint16).reshape(48, 48) * 28).save(d / "6.png")
    pal = noise_rgb(7).quantize(8)
    pal.save(d / "7.png", transparency=0)
    noise_rgb(8, w=64, h=48).save(d / "8.png")
    Image.open(d / "1.png").save(d / "9.png", compress_level=1)
    shutil.copy(d / "1.png", d / "10.png")
    (d / "11.jpg").write_bytes(b"")
    (d / "12.jpg").write_text("not a picture\n")
    full = (d / "0.jpg").read_bytes()
    (d / "13.jpg").write_bytes(full[: len(full) // 2])
    noise_rgb(14, 16, 16).save(d / "14.png")
    png_header_only(d / "15.png", 5000, 5000)
    png_header_only(d / "16.png", 20000, 20000)
    Image.fromarray(np.full((48, 48), 0.5, np.float32)).save(d / "17.tif")
    noise_rgb(18, 48, 16).save(d / "18.jpg")
    (d / "notes.txt").write_text("hello\n")
    assert sorted(p.name for p in d.iterdir()) == sorted(EXPECTED)
    return d


def run_clean(src: Path, out: Path, **kw: object):
    out.mkdir(parents=True)
    args = {"image_size": SIZE, "min_side": 24, "max_pixels": 4096 * 4096, "resample": "lanczos"} | kw
    return clean_faces(src, out, **args)


def read_manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_every_bad_kind_is_dropped_with_its_reason_and_every_convertible_kind_kept(bad_folder, tmp_path):
    out = tmp_path / "clean"
    result = run_clean(bad_folder, out)
    manifest = read_manifest(out)

    assert [e["name"] for e in manifest] == list(EXPECTED)  # one line per file, numeric order, then by name
    for e in manifest:
        assert ("kept" if e["kept"] else e["reason"]) == EXPECTED[e["name"]], e
    kept = [e for e in manifest if e["kept"]]
    assert [e["index"] for e in kept] == list(range(len(kept)))
    dupes = {e["name"]: e["duplicate_of"] for e in manifest if e.get("reason") == "duplicate"}
    assert dupes == {"9.png": "1.png", "10.png": "1.png"}
    assert {e["name"]: e["mode"] for e in kept} == {
        "0.jpg": "RGB", "1.png": "RGB", "2.jpg": "L", "3.png": "P", "4.jpg": "CMYK",
        "5.png": "RGBA", "6.png": "I;16", "7.png": "P", "8.png": "RGB",
    }  # fmt: skip

    want = {r: 0 for r in REASONS} | {
        "duplicate": 2, "empty": 1, "not_image": 2, "corrupt": 1, "too_small": 2, "too_large": 2,
        "unsupported_mode": 1,
    }  # fmt: skip
    assert result.dropped == want
    assert result.files == len(EXPECTED) and result.kept == 9
    assert result.converted == {"CMYK": 1, "I;16": 1, "L": 1, "P": 2, "RGBA": 1}
    assert result.alpha_flattened == 2  # the RGBA file and the palette with a transparent index

    faces = np.load(out / "faces.npy")
    assert faces.shape == (9, SIZE, SIZE, 3) and faces.dtype == np.uint8
    assert result.sha256 == hashlib.sha256(faces.tobytes()).hexdigest()

    row = {e["name"]: faces[e["index"]] for e in kept}
    assert (row["5.png"][:, :12] == 255).all()  # the transparent half is composited over white
    assert row["6.png"].max() > 200 and row["6.png"].min() < 50  # scaled from 16 bits, not clipped to white
    grey = row["2.jpg"]
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()


def test_numeric_file_order_decides_the_rows(tmp_path):
    src = tmp_path / "faces"
    src.mkdir()
    names = ["10.png", "2.png", "1.png", "0.png", "b.png", "a.png", "100.png", "11.png"]
    for n in names:
        shade = int(Path(n).stem) if Path(n).stem.isdigit() else {"a": 200, "b": 201}[Path(n).stem]
        Image.new("RGB", (SIZE, SIZE), (shade, shade, shade)).save(src / n)
    assert list_faces(src) == ["0.png", "1.png", "2.png", "10.png", "11.png", "100.png", "a.png", "b.png"]

    out = tmp_path / "clean"
    run_clean(src, out)
    faces = np.load(out / "faces.npy")
    assert faces[:, 0, 0, 0].tolist() == [0, 1, 2, 10, 11, 100, 200, 201]  # same size: pixels kept exactly


def test_same_input_twice_gives_identical_bytes(bad_folder, tmp_path):
    a = run_clean(bad_folder, tmp_path / "a")
    b = run_clean(bad_folder, tmp_path / "b")
    assert a.sha256 == b.sha256
    for name in ("faces.npy", "manifest.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_resample_filter_changes_the_pixels(bad_folder, tmp_path):
    lanczos = run_clean(bad_folder, tmp_path / "l", resample="lanczos")
    box = run_clean(bad_folder, tmp_path / "b", resample="box")
    assert lanczos.sha256 != box.sha256 and box.resample == "box"


def test_missing_or_empty_folder_is_one_line_user_error(tmp_path):
    with pytest.raises(UserError, match="no face folder at .*animegan download"):
        run_clean(tmp_path / "absent", tmp_path / "o1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no files"):
        run_clean(tmp_path / "empty", tmp_path / "o2")


def test_nothing_usable_is_a_user_error_naming_the_reasons(tmp_path):
    src = tmp_path / "faces"
    src.mkdir()
    (src / "0.jpg").write_bytes(b"")
    (src / "1.jpg").write_text("x")
    with pytest.raises(UserError, match=r"none of the 2 files .* \(1 empty, 1 not_image\)"):
        run_clean(src, tmp_path / "o")
