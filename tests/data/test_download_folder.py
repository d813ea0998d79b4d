"""A folder as the data source (issue 26): the course zip's layouts unpacked, or the images themselves (Kaggle's
/kaggle/input/<dataset>/faces), copied into paths.raw while the source stays as it was, byte for byte and mtime.

Sources are real JPEG files in temp folders, made read-only (chmod -w: files and folders). Where the tests run as
root, chmod does not stop a write, so every test compares the source's full state (bytes, mtime, mode, entries)
before and after instead of relying on the permission.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from folder_state import tree_state
from test_download_cli import animegan

from pipeline.core.errors import UserError
from pipeline.data.cartoon import cartoon_face
from stages import download


def face_jpeg(i: int, size: int = 48) -> bytes:  # clean keeps 32 px and up
    buf = io.BytesIO()
    cartoon_face(seed=5, index=i, size=size).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def manifest_hash(images: dict[str, bytes]) -> str:
    """The documented rule, computed here independently: sha256 of "<file sha256>  <name>\\n" lines sorted by name."""
    lines = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(images.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


class Source:
    """A face folder under `root` in one layout; `lock()` takes the write bits away (given back at teardown)."""

    def __init__(self, root: Path, layout: str, count: int = 3) -> None:
        self.root = root
        self.images = {f"{i}.jpg": face_jpeg(i) for i in range(count)}
        self.folder = root / layout
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.images.items():
            (self.folder / name).write_bytes(data)

    def lock(self) -> dict[str, tuple]:
        for p in [*sorted(self.root.rglob("*"), reverse=True), self.root]:
            p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        return tree_state(self.root)

    def unlock(self) -> None:
        for p in [self.root, *sorted(self.root.rglob("*"))]:
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | stat.S_IWUSR)


@pytest.fixture
def make_source(tmp_path: Path) -> Iterator:
    made: list[Source] = []

    def make(layout: str = "faces", count: int = 3, name: str = "dataset") -> Source:
        made.append(Source(tmp_path / "input" / name, layout, count))
        return made[-1]

    yield make
    for source in made:
        source.unlock()


def raw_of(params) -> Path:
    return Path(params.paths.raw)


@pytest.mark.parametrize("layout", ["", "faces", "faces/faces"])
def test_each_layout_is_copied_and_the_source_left_as_it_was(layout, make_source, stage_params) -> None:
    source = make_source(layout)
    before = source.lock()
    params = stage_params(url=str(source.root))
    download.execute(params)

    raw = raw_of(params)
    assert sorted(p.name for p in (raw / "faces").iterdir()) == ["0.jpg", "1.jpg", "2.jpg"]
    for name, data in source.images.items():
        copy = raw / "faces" / name
        assert copy.read_bytes() == data
        assert copy.stat().st_ino != (source.folder / name).stat().st_ino  # a copy, not a (hard) link
        assert not copy.is_symlink() and copy.stat().st_mode & stat.S_IWUSR  # ours to write: nothing shared
    assert json.loads((raw / "SOURCE.json").read_text()) == {
        "url": str(source.root),
        "kind": "folder",
        "sha256": manifest_hash(source.images),
        "bytes": sum(len(d) for d in source.images.values()),
        "files": 3,
        "layout": f"{layout}/" if layout else "./",
        "unpacked_bytes": sum(len(d) for d in source.images.values()),
        "pinned": False,
    }
    assert tree_state(source.root) == before
    assert sorted(p.name for p in raw.parent.iterdir()) == ["raw"]  # no temporary left beside it


def test_the_folder_hash_is_what_sha256sum_gives_and_ignores_the_layout(make_source, stage_params) -> None:
    nested, flat = make_source("faces/faces", name="nested"), make_source("", name="flat")
    hashes = []
    for source in (nested, flat):  # unpinned, the second url replaces the first's data
        params = stage_params(url=source.root.as_uri())  # file:// names a folder too
        download.execute(params)
        hashes.append(json.loads((raw_of(params) / "SOURCE.json").read_text())["sha256"])
    pipeline = "find . -maxdepth 1 -type f ! -name '.*' -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum"
    shell = subprocess.run(f"{pipeline} | sha256sum", shell=True, cwd=flat.folder, capture_output=True, text=True,
                           check=True)  # fmt: skip
    assert hashes[0] == hashes[1] == shell.stdout.split()[0] == manifest_hash(flat.images)


def test_a_pinned_folder_is_checked_and_then_never_read_again(make_source, stage_params, caplog) -> None:
    source = make_source()
    pin = manifest_hash(source.images)
    params = stage_params(url=str(source.root), sha256=pin)
    download.execute(params)
    assert json.loads((raw_of(params) / "SOURCE.json").read_text())["pinned"] is True
    source.unlock()
    source.root.rename(source.root.with_name("moved"))  # gone: a second run that read it would fail
    source.root = source.root.with_name("moved")
    download.execute(params)
    assert sorted(p.name for p in (raw_of(params) / "faces").iterdir()) == ["0.jpg", "1.jpg", "2.jpg"]


def test_hidden_files_and_macos_metadata_are_skipped(make_source, stage_params) -> None:
    source = make_source()
    (source.folder / ".DS_Store").write_bytes(b"finder")
    (source.root / "__MACOSX").mkdir()
    (source.root / "__MACOSX" / "._0.jpg").write_bytes(b"fork")
    before = source.lock()
    params = stage_params(url=str(source.root))
    download.execute(params)
    assert sorted(p.name for p in (raw_of(params) / "faces").iterdir()) == ["0.jpg", "1.jpg", "2.jpg"]
    assert json.loads((raw_of(params) / "SOURCE.json").read_text())["sha256"] == manifest_hash(source.images)
    assert tree_state(source.root) == before


def test_a_wrong_pin_leaves_the_old_data_in_place(make_source, stage_params, faces_zip, snapshot) -> None:
    download.execute(stage_params(url=str(faces_zip("old.zip", count=2, seed=100))))
    source = make_source()
    before = source.lock()
    params = stage_params(url=str(source.root), sha256="ab" * 32)
    data = raw_of(params).parent
    old = snapshot(data)
    with pytest.raises(UserError, match=r"checksum mismatch for .*dataset: got sha256 [0-9a-f]{64}, data\.sha256 pins"):
        download.execute(params)
    assert snapshot(data) == old and tree_state(source.root) == before


def write_broken(folder: Path) -> None:
    (folder / "3.jpg").write_bytes(face_jpeg(3)[:200])  # a JPEG cut short


def spoil(case: str, s: Source) -> None:
    """Turn a good source (images in faces/) into the bad case."""
    if case == "empty faces folder":
        for p in list(s.folder.iterdir()):
            p.unlink()
    elif case == "empty folder":
        shutil.rmtree(s.folder)
    elif case == "extra level":  # faces/faces/faces/<images>: one level more than the course zip ever had
        s.folder.rename(s.root / "moved")
        (s.root / "faces" / "faces").mkdir(parents=True)
        (s.root / "moved").rename(s.root / "faces" / "faces" / "faces")
    elif case == "stray folder":
        (s.root / "extra").mkdir()
    elif case == "stray file":
        (s.root / "notes.txt").write_text("hi")
    elif case == "folder among images":
        (s.folder / "more").mkdir()
    elif case == "no readable image":
        for name in s.images:
            (s.folder / name).write_bytes(b"not a jpeg")
    elif case == "symlink":
        (s.folder / "link.jpg").symlink_to(s.folder / "0.jpg")
    elif case == "too many files":
        write_broken(s.folder)


BAD_FOLDERS = {  # case -> the one-line message expected
    "empty faces folder": r"dataset/faces holds no files \(expected the face images",
    "empty folder": r"dataset holds no files \(expected the face images",
    "extra level": r"folder layout not recognised in .*dataset: expected the images, faces/<images> or "
                   r"faces/faces/<images>, found faces/faces/faces/",
    "stray folder": r"found extra/",
    "stray file": r"found notes\.txt",
    "folder among images": r"found faces/more/",
    "no readable image": r"none of the 3 files in .*dataset/faces is a readable image",
    "symlink": r"dataset/faces/link\.jpg is a symbolic link: refused",
    "too many files": r"dataset/faces holds 4 files, more than data\.max_entries=3",
}  # fmt: skip


@pytest.fixture
def existing_raw(stage_params, faces_zip, tmp_path) -> Path:
    """paths.raw already filled from a zip by `animegan download`, as a user would have it; returns tmp_path."""
    stage_params()  # copies params.yaml into tmp_path
    done = cli_download(tmp_path, faces_zip("old.zip", count=2, seed=100).as_uri())
    assert done.returncode == 0, done.stderr
    return tmp_path


def cli_download(cwd: Path, url: str, *sets: str) -> subprocess.CompletedProcess[str]:
    raw = cwd / "data" / "raw"
    options = [a for s in (f"paths.raw={raw}", f"data.url={url}", *sets) for a in ("--set", s)]
    return animegan("download", "--params", "params.yaml", *options, cwd=cwd)


@pytest.mark.parametrize("case", sorted(BAD_FOLDERS))
def test_bad_folders_exit_2_in_one_line_touching_nothing(case, existing_raw, make_source, snapshot) -> None:
    source = make_source()
    spoil(case, source)
    before = source.lock()
    data = existing_raw / "data"
    old = snapshot(data)
    done = cli_download(existing_raw, str(source.root), "data.max_entries=3")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert re.search(BAD_FOLDERS[case], lines[0]), lines[0]
    assert "Traceback" not in done.stdout + done.stderr
    assert snapshot(data) == old  # the zip's data as it was, and no temporary beside it
    assert tree_state(source.root) == before


def test_a_missing_path_and_overlapping_ones_exit_2(existing_raw, snapshot) -> None:
    data = existing_raw / "data"
    old = snapshot(data)
    nowhere = existing_raw / "input" / "nowhere" / "faces"
    missing = cli_download(existing_raw, str(nowhere))
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [
        f"error: download failed: no such file or folder {nowhere} (data.url={nowhere})"
    ]
    inside = cli_download(existing_raw, str(data / "raw" / "faces"))  # the output as its own source
    assert inside.returncode == 2
    assert inside.stderr.splitlines() == [
        f"error: params.yaml: paths.raw ({data / 'raw'}) is replaced whole by its stage but would hold data.url "
        f"({data / 'raw' / 'faces'}): give it a folder of its own"
    ]
    holding = cli_download(existing_raw, str(data))  # a source folder that holds the outputs
    assert holding.returncode == 2
    assert re.fullmatch(rf"error: params\.yaml: data\.url \({data}\) is a folder that holds paths\.\w+ \({data}/\w+\): "
                        r"the data source must lie outside the pipeline's outputs\n", holding.stderr)  # fmt: skip
    assert snapshot(data) == old


def test_a_broken_jpeg_among_good_ones_is_copied_and_clean_drops_it(existing_raw, make_source) -> None:
    source = make_source()
    write_broken(source.folder)
    before = source.lock()
    done = cli_download(existing_raw, str(source.root))
    assert done.returncode == 0, done.stderr
    raw = existing_raw / "data" / "raw"
    assert json.loads((raw / "SOURCE.json").read_text())["files"] == 4
    cleaned = animegan("clean", "--params", "params.yaml", "--set", f"paths.raw={raw}",
                       "--set", f"paths.clean={existing_raw / 'data' / 'clean'}",
                       "--set", f"paths.metrics={existing_raw / 'metrics'}",
                       "--set", f"paths.plots={existing_raw / 'plots'}", cwd=existing_raw)  # fmt: skip
    assert cleaned.returncode == 0, cleaned.stderr
    metrics = json.loads((existing_raw / "metrics" / "data.json").read_text())
    assert metrics["kept"] == 3 and metrics["dropped_by_reason"]["corrupt"] == 1
    assert metrics["source"]["sha256"] == manifest_hash({**source.images, "3.jpg": face_jpeg(3)[:200]})
    assert tree_state(source.root) == before

