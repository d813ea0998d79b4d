"""pipeline.data.archive on real zips: the safety checks, the bounds and the two accepted layouts."""

from __future__ import annotations

import io
import stat
import struct
import warnings
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from pipeline.core.errors import UserError
from pipeline.data.archive import extract_faces

BIG = 1 << 30


def jpeg_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (seed * 40 % 256, 90, 160)).save(buf, format="JPEG")
    return buf.getvalue()


def zip_with(path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("faces/0.jpg", jpeg_bytes(0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about the duplicate-name case, which is the point
            for name, data in entries:
                zf.writestr(name, data)
    return path


def special(name: str, file_type: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (file_type | 0o644) << 16
    return info


def extract(zip_path: Path, dest: Path, max_entries: int = 1000, max_total_bytes: int = BIG):
    return extract_faces(zip_path, dest, max_entries=max_entries, max_total_bytes=max_total_bytes)


@pytest.mark.parametrize("prefix", ["faces/", "faces/faces/"])
def test_both_layouts_end_up_as_faces_files(tmp_path: Path, faces_zip, jpeg, prefix: str) -> None:
    zip_path = faces_zip("f.zip", count=4, prefix=prefix)
    result = extract(zip_path, tmp_path / "out")
    assert result.layout == prefix
    assert result.files == 4
    assert sorted(p.name for p in (tmp_path / "out" / "faces").iterdir()) == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]
    assert (tmp_path / "out" / "faces" / "2.jpg").read_bytes() == jpeg(2)
    assert result.bytes == sum(len(jpeg(i)) for i in range(4))


def test_macos_metadata_is_skipped(tmp_path: Path) -> None:
    zip_path = zip_with(tmp_path / "f.zip", [("__MACOSX/faces/._0.jpg", b"resource fork")])
    assert extract(zip_path, tmp_path / "out").files == 1
    assert not (tmp_path / "out" / "__MACOSX").exists()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (("faces/../../evil.jpg", b"x"), "climbs out"),
        (("faces/..\\..\\evil.jpg", b"x"), "climbs out"),
        (("/etc/evil.jpg", b"x"), "absolute path"),
        (("C:/evil.jpg", b"x"), "absolute path"),
        ((special("faces/link.jpg", stat.S_IFLNK), b"/etc/passwd"), "symbolic link"),
        ((special("faces/dev.jpg", stat.S_IFCHR), b""), "device file"),
        ((special("faces/blk.jpg", stat.S_IFBLK), b""), "device file"),
        ((special("faces/fifo.jpg", stat.S_IFIFO), b""), "FIFO"),
        (("faces/0.jpg", b"again"), "appears twice"),
        (("elsewhere/1.jpg", b"x"), "layout not recognised"),
    ],
)
def test_unsafe_entries_are_refused(tmp_path: Path, entry: tuple, message: str) -> None:
    zip_path = zip_with(tmp_path / "bad.zip", [entry])
    with pytest.raises(UserError, match=message):
        extract(zip_path, tmp_path / "out")
    assert not (tmp_path / "evil.jpg").exists() and not Path("/etc/evil.jpg").exists()


def test_entry_count_is_bounded(tmp_path: Path, faces_zip) -> None:
    zip_path = faces_zip("f.zip", count=5)  # 6 entries with the folder entry
    assert extract(zip_path, tmp_path / "ok", max_entries=6).files == 5
    with pytest.raises(UserError, match="6 entries, more than data.max_entries=5"):
        extract(zip_path, tmp_path / "out", max_entries=5)
    assert not (tmp_path / "out").exists()  # refused before writing anything


def test_declared_size_is_bounded(tmp_path: Path) -> None:
    zip_path = zip_with(tmp_path / "f.zip", [("faces/zeros.bin", bytes(300_000))])
    with pytest.raises(UserError, match="more than data.max_total_mb"):
        extract(zip_path, tmp_path / "out", max_total_bytes=200_000)
    assert not (tmp_path / "out").exists()


def test_lying_size_header_cannot_beat_the_bound(tmp_path: Path) -> None:
    """Headers claim 10 bytes per entry; the entries really inflate to 1 MB each (a zip bomb's trick)."""
    zip_path = tmp_path / "liar.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(3):
            zf.writestr(f"faces/{i}.bin", bytes(1 << 20))
    _rewrite_uncompressed_sizes(zip_path, 10)
    assert sum(i.file_size for i in zipfile.ZipFile(zip_path).infolist()) == 30
    with pytest.raises(UserError, match="not a readable zip archive.*CRC|more than data.max_total_mb"):
        extract(zip_path, tmp_path / "out", max_total_bytes=100_000)
    written = sum(p.stat().st_size for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written <= 100_000


@pytest.mark.parametrize("content", [b"", b"<html>not a zip</html>", b"PK\x03\x04 truncated"])
def test_non_zip_is_refused(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "faces.zip"
    bad.write_bytes(content)
    with pytest.raises(UserError, match="not a readable zip archive"):
        extract(bad, tmp_path / "out")


def test_corrupt_member_is_refused(tmp_path: Path) -> None:
    zip_path = tmp_path / "f.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("faces/0.jpg", jpeg_bytes(0))
    data = bytearray(zip_path.read_bytes())
    data[30 + len("faces/0.jpg") + 20] ^= 0xFF  # a byte inside the stored JPEG: the CRC no longer matches
    zip_path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="not a readable zip archive.*CRC"):
        extract(zip_path, tmp_path / "out")


def test_empty_archive_is_refused(tmp_path: Path) -> None:
    zip_path = tmp_path / "empty.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("faces/", b"")
    with pytest.raises(UserError, match="holds no files"):
        extract(zip_path, tmp_path / "out")


def _rewrite_uncompressed_sizes(zip_path: Path, size: int) -> None:
    """Overwrite the uncompressed size in every local and central header (offsets from the zip spec, APPNOTE 4.3)."""
    data = bytearray(zip_path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = data.find(signature)
        while start != -1:
            struct.pack_into("<I", data, start + offset, size)
            start = data.find(signature, start + 4)
    zip_path.write_bytes(bytes(data))
