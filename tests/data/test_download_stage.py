"""The download stage end to end, against a real HTTP server on 127.0.0.1 and real zips.

Every refused case checks the one-line error, that the data folder (paths.raw and its siblings, where the
temporary files live) is byte-for-byte as before, and so that no temporary file remains.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import stat
import zipfile
from pathlib import Path

import pytest

from pipeline.core.errors import UserError
from stages import download


def raw_dir(params) -> Path:
    return Path(params.paths.raw)


def source(params) -> dict:
    return json.loads((raw_dir(params) / "SOURCE.json").read_text())


def faces_in(params) -> list[str]:
    return sorted(p.name for p in (raw_dir(params) / "faces").iterdir())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def existing_raw(stage_params, faces_zip):
    """paths.raw already filled by a first download (from a local path), as a user would have it."""
    params = stage_params(url=str(faces_zip("old.zip", count=2, seed=100)))
    download.execute(params)
    return params


def assert_refused(params, message: str, snapshot) -> UserError:
    data = raw_dir(params).parent
    before = snapshot(data)
    with pytest.raises(UserError, match=message) as caught:
        download.execute(params)
    assert "\n" not in str(caught.value)
    assert snapshot(data) == before
    assert not [p for p in data.iterdir() if p.name.startswith(".")], "a temporary file was left behind"
    return caught.value


def test_good_zip_over_http(http_server, faces_zip, stage_params) -> None:
    zip_path = faces_zip("faces.zip", count=3)
    params = stage_params(url=http_server.serve("/faces.zip", zip_path))
    download.execute(params)
    assert faces_in(params) == ["0.jpg", "1.jpg", "2.jpg"]
    assert source(params) == {
        "url": params.data.url,
        "kind": "zip",
        "sha256": sha256(zip_path),
        "bytes": zip_path.stat().st_size,
        "files": 3,
        "layout": "faces/",
        "unpacked_bytes": sum(p.stat().st_size for p in (raw_dir(params) / "faces").iterdir()),
        "pinned": False,
    }
    assert sorted(p.name for p in raw_dir(params).parent.iterdir()) == ["raw"]
    assert http_server.requests == ["/faces.zip"]


def test_nested_layout_is_normalised(http_server, faces_zip, stage_params) -> None:
    params = stage_params(url=http_server.serve("/n.zip", faces_zip("n.zip", count=2, prefix="faces/faces/")))
    download.execute(params)
    assert faces_in(params) == ["0.jpg", "1.jpg"]
    assert source(params)["layout"] == "faces/faces/"


def test_file_url_and_plain_path(faces_zip, stage_params) -> None:
    zip_path = faces_zip("local.zip", count=2)
    params = stage_params(url=zip_path.as_uri())
    download.execute(params)
    assert source(params)["sha256"] == sha256(zip_path)
    assert faces_in(params) == ["0.jpg", "1.jpg"]


def test_second_run_makes_no_request(http_server, faces_zip, stage_params, snapshot) -> None:
    zip_path = faces_zip("faces.zip")
    url = http_server.serve("/faces.zip", zip_path)
    params = stage_params(url=url)
    download.execute(params)
    before = snapshot(raw_dir(params))
    download.execute(params)  # unpinned, same url
    download.execute(stage_params(url=url, sha256=sha256(zip_path)))  # pinned to what is already there
    download.execute(stage_params(url=url + "?mirror", sha256=sha256(zip_path)))  # pinned content matters, not url
    assert http_server.requests == ["/faces.zip"]
    assert snapshot(raw_dir(params)) == before


def test_unpinned_warns_once_and_records_hash(http_server, faces_zip, stage_params, caplog) -> None:
    zip_path = faces_zip("faces.zip")
    params = stage_params(url=http_server.serve("/faces.zip", zip_path))
    with caplog.at_level(logging.INFO):
        download.execute(params)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "not checked against a known hash" in warnings[0]
    assert f"data.sha256: {sha256(zip_path)}" in warnings[0] and "params.yaml" in warnings[0]
    assert source(params)["sha256"] == sha256(zip_path)
    assert source(params)["pinned"] is False

    caplog.clear()
    download.execute(params)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_pinned_download_is_verified_and_silent(http_server, faces_zip, stage_params, caplog) -> None:
    zip_path = faces_zip("faces.zip")
    params = stage_params(url=http_server.serve("/faces.zip", zip_path), sha256=sha256(zip_path))
    with caplog.at_level(logging.WARNING):
        download.execute(params)
    assert not caplog.records
    assert source(params)["pinned"] is True


def test_pin_change_replaces_only_after_verification(http_server, faces_zip, stage_params, snapshot) -> None:
    old_zip, new_zip = faces_zip("a.zip", count=2, seed=0), faces_zip("b.zip", count=4, seed=50)
    old_url, new_url = http_server.serve("/a.zip", old_zip), http_server.serve("/b.zip", new_zip)
    download.execute(stage_params(url=old_url, sha256=sha256(old_zip)))

    # The new pin while the server still has the old file: refused, the old data stays.
    assert_refused(stage_params(url=old_url, sha256=sha256(new_zip)), "checksum mismatch", snapshot)
    # The new file, but the connection drops half-way: refused, the old data stays.
    dropping = http_server.serve_dropping("/b-drop.zip", new_zip)
    assert_refused(stage_params(url=dropping, sha256=sha256(new_zip)), "connection dropped", snapshot)

    params = stage_params(url=new_url, sha256=sha256(new_zip))
    download.execute(params)
    assert faces_in(params) == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]
    assert source(params)["sha256"] == sha256(new_zip)
    assert sorted(p.name for p in raw_dir(params).parent.iterdir()) == ["raw"]


def test_new_url_while_unpinned_replaces(existing_raw, http_server, faces_zip, stage_params) -> None:
    new_zip = faces_zip("new.zip", count=3, seed=7)
    params = stage_params(url=http_server.serve("/new.zip", new_zip))
    download.execute(params)
    assert faces_in(params) == ["0.jpg", "1.jpg", "2.jpg"]
    assert source(params)["url"] == params.data.url


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("wrong checksum", r"checksum mismatch for http://127\.0\.0\.1:\d+/faces\.zip: got sha256 [0-9a-f]{64}"),
        ("404", r"download failed: HTTP 404 Not Found from http://127\.0\.0\.1:\d+/missing\.zip"),
        ("dropped", r"download failed: connection dropped after \d+ of \d+ bytes"),
        ("timeout", r"download failed: no data from 127\.0\.0\.1:\d+ for 0\.3 s \(data\.timeout_s\)"),
        ("unreachable", r"download failed: cannot reach 127\.0\.0\.1:\d+: .*refused"),
        ("missing file", r"download failed: no such file .*nowhere\.zip"),
        ("not a zip", r"faces\.zip: not a readable zip archive"),
        ("zip slip", r"archive entry 'faces/\.\./\.\./evil\.jpg' climbs out of the folder"),
        ("symlink", r"archive entry 'faces/link\.jpg' is a symbolic link"),
        ("too many entries", r"archive has 4 entries, more than data\.max_entries=2"),
    ],
)
def test_failures_leave_raw_untouched(
    case, message, existing_raw, http_server, faces_zip, stage_params, snapshot, tmp_path
) -> None:
    good = faces_zip("faces.zip", count=3)
    data: dict[str, object] = {}
    if case == "wrong checksum":
        data["url"] = http_server.serve("/faces.zip", good)
        data["sha256"] = "ab" * 32
    elif case == "404":
        data["url"] = http_server.base + "/missing.zip"
    elif case == "dropped":
        data["url"] = http_server.serve_dropping("/faces.zip", good)
    elif case == "timeout":
        data["url"], data["timeout_s"] = http_server.serve_stalling("/faces.zip", good), 0.3
    elif case == "unreachable":
        data["url"] = f"http://127.0.0.1:{_closed_port()}/faces.zip"
    elif case == "missing file":
        data["url"] = str(tmp_path / "nowhere.zip")
    elif case == "not a zip":
        page = tmp_path / "zips" / "page.html"
        page.write_text("<html>Sign in to download</html>")
        data["url"] = http_server.serve("/faces.zip", page)
    elif case in ("zip slip", "symlink"):
        bad = tmp_path / "zips" / "bad.zip"
        with zipfile.ZipFile(bad, "w") as zf:
            zf.writestr("faces/0.jpg", good.read_bytes())
            if case == "zip slip":
                zf.writestr("faces/../../evil.jpg", b"owned")
            else:
                link = zipfile.ZipInfo("faces/link.jpg")
                link.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(link, "/etc/passwd")
        data["url"] = http_server.serve("/bad.zip", bad)
    elif case == "too many entries":
        data["url"], data["max_entries"] = http_server.serve("/faces.zip", good), 2
    assert_refused(stage_params(**data), message, snapshot)
    assert not (tmp_path / "evil.jpg").exists() and not (tmp_path / "data" / "evil.jpg").exists()


def test_failed_first_download_leaves_no_folder_behind(http_server, stage_params, tmp_path) -> None:
    params = stage_params(url=http_server.base + "/missing.zip")
    with pytest.raises(UserError, match="HTTP 404"):
        download.execute(params)
    assert not (tmp_path / "data").exists()


def test_foreign_raw_folder_is_never_overwritten(http_server, faces_zip, stage_params, snapshot) -> None:
    params = stage_params(url=http_server.serve("/faces.zip", faces_zip("faces.zip")))
    (raw_dir(params) / "faces").mkdir(parents=True)
    (raw_dir(params) / "faces" / "mine.jpg").write_bytes(b"unzipped by hand")
    assert_refused(params, "holds files but no readable SOURCE.json", snapshot)
    assert http_server.requests == []


def test_raw_path_that_is_a_file_is_refused(http_server, faces_zip, stage_params, snapshot) -> None:
    params = stage_params(url=http_server.serve("/faces.zip", faces_zip("faces.zip")))
    raw_dir(params).parent.mkdir(parents=True)
    raw_dir(params).write_text("not a folder")
    assert_refused(params, "no readable SOURCE.json", snapshot)
    assert http_server.requests == []


def test_empty_raw_folder_is_filled(faces_zip, stage_params) -> None:
    params = stage_params(url=str(faces_zip("faces.zip")))
    raw_dir(params).mkdir(parents=True)
    download.execute(params)
    assert faces_in(params) == ["0.jpg", "1.jpg", "2.jpg"]
