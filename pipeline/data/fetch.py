"""Stream a URL or local file to a temporary file, hashing it on the way.

Usage:
    from pipeline.data.fetch import fetched
    with fetched("https://host/faces.zip", beside=Path("data/raw"), timeout_s=60) as f:
        f.path, f.sha256, f.bytes      # the temporary copy; deleted when the block ends, whatever happens

Sources: http://, https://, file:// URLs and plain local paths (`local_path(url)` says which file a URL names; the
download stage copies a folder through pipeline.data.image_folder instead). The copy is written beside `beside` (same
filesystem as its final home) under a hidden temporary name. Every failure (HTTP status, timeout, dropped
connection, unreachable host, missing file) raises UserError with one line naming the problem; the temporary
file never outlives the block.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from pipeline.core.atomic import hold_temp, make_temp_file, release_temp
from pipeline.core.errors import UserError, one_line
from pipeline.core.progress import progress

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "animegan-pipeline (python urllib)"
DOWNLOAD_KIND = "download"  # the copy is .<beside>.<random>.download.tmp: remove_stale_temporaries(beside) finds it


@dataclass(frozen=True)
class Fetched:
    path: Path
    sha256: str
    bytes: int


@contextlib.contextmanager
def fetched(url: str, beside: Path, timeout_s: float) -> Iterator[Fetched]:
    """Copy `url` to a temporary file next to `beside`; yield it with its sha256; always delete it afterwards.
    Folders made for it are removed again (when still empty) if anything fails."""
    beside = Path(beside)
    made = [d for d in (beside.parent, *beside.parent.parents) if not d.exists()]  # deepest first
    beside.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_file(beside, DOWNLOAD_KIND)
    hold_temp(tmp)
    succeeded = False
    try:
        with open(tmp, "wb") as out:
            digest, size = _copy(url, out, timeout_s)
        log.info("fetched %s: %d bytes, sha256 %s", url, size, digest)
        yield Fetched(path=tmp, sha256=digest, bytes=size)
        succeeded = True
    finally:
        tmp.unlink(missing_ok=True)
        release_temp(tmp)
        if not succeeded:
            _remove_empty(made)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): leave it and everything above it
            return


def local_path(url: str) -> Path | None:
    """The local file or folder a file:// URL or a plain path names; None for http(s). Unknown schemes: UserError."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return None
    if scheme == "file":
        return Path(unquote(urlsplit(url).path))
    if len(scheme) > 1:  # one letter is a Windows drive, i.e. a plain path
        raise UserError(f"data.url: unsupported scheme {scheme!r} in {url} (use http://, https://, file:// or a path)")
    return Path(url).expanduser()


def _copy(url: str, out: BinaryIO, timeout_s: float) -> tuple[str, int]:
    path = local_path(url)
    return _copy_http(url, out, timeout_s) if path is None else _copy_local(path, url, out)


def _copy_local(path: Path, url: str, out: BinaryIO) -> tuple[str, int]:
    try:
        with open(path, "rb") as src:
            return _stream(src, out, total=os.fstat(src.fileno()).st_size, url=url)
    except FileNotFoundError:
        raise UserError(f"download failed: no such file or folder {path} (data.url={url})") from None
    except IsADirectoryError:
        raise UserError(f"download failed: {path} is a folder, expected the zip file (data.url={url})") from None
    except OSError as e:
        raise UserError(f"download failed: cannot read {path}: {e.strerror or e}") from None


def _copy_http(url: str, out: BinaryIO, timeout_s: float) -> tuple[str, int]:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    host = urlsplit(url).netloc
    try:
        # `timeout` bounds the connect and every single read, so a stalled server fails instead of hanging.
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            return _stream(response, out, total=total, url=url)
    except urllib.error.HTTPError as e:
        raise UserError(f"download failed: HTTP {e.code} {e.reason} from {url}") from None
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, TimeoutError):
            raise UserError(f"download failed: {host} did not answer within {timeout_s:g} s ({url})") from None
        if isinstance(reason, socket.gaierror):
            raise UserError(f"download failed: cannot resolve host {host} ({url})") from None
        raise UserError(f"download failed: cannot reach {host}: {_reason(reason)} ({url})") from None
    except TimeoutError:
        raise UserError(f"download failed: no data from {host} for {timeout_s:g} s (data.timeout_s) ({url})") from None
    except (ConnectionError, http.client.HTTPException) as e:
        raise UserError(f"download failed: connection to {host} dropped ({_reason(e)}) ({url})") from None


def _stream(src: BinaryIO, out: BinaryIO, total: int | None, url: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with progress(total=total, desc="download", unit="B", unit_scale=True, unit_divisor=1024) as bar:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            try:
                out.write(chunk)
            except OSError as e:
                raise UserError(f"download failed: cannot write the temporary copy: {_reason(e)}") from None
            size += len(chunk)
            bar.update(len(chunk))
    # urllib returns a short body without complaint when the server closes early: compare with what was announced.
    if total is not None and size != total:
        raise UserError(f"download failed: connection dropped after {size} of {total} bytes ({url})")
    return digest.hexdigest(), size


def _reason(e: object) -> str:
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return one_line(text)
