"""Fixtures for the data stages: tiny face zips made with Pillow, a real HTTP server on 127.0.0.1, stage params.

Usage (in tests under tests/data/; helpers come as fixtures, since test folders are not packages):
    def test_x(http_server, faces_zip, stage_params, snapshot):
        url = http_server.serve("/faces.zip", faces_zip("f.zip", count=3))
        params = stage_params(url=url)
        ...
        assert http_server.requests == ["/faces.zip"]
"""

from __future__ import annotations

import hashlib
import io
import shutil
import threading
import zipfile
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from pipeline.core.config import Params, load_params

REPO = Path(__file__).resolve().parents[2]


def jpeg_bytes(seed: int, size: int = 8) -> bytes:
    """A tiny real JPEG whose colour depends on `seed`."""
    image = Image.new("RGB", (size, size), ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))
    buf = io.BytesIO()
    image.save(buf, format="JPEG")
    return buf.getvalue()


def make_faces_zip(path: Path, count: int = 3, prefix: str = "faces/", seed: int = 0) -> Path:
    """A zip in the course layout: `<prefix>0.jpg ..` holding `count` tiny JPEGs."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(prefix, b"")  # the folder entry, as `zip -r` writes it
        for i in range(count):
            zf.writestr(f"{prefix}{i}.jpg", jpeg_bytes(seed + i))
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under `folder` (hidden ones too) with a hash of its bytes: equal means untouched."""
    folder = Path(folder)
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
    }


class LocalServer:
    """An HTTP server on 127.0.0.1 (port 0) in a thread; each path has a behaviour; every request is recorded."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {}
        self.requests: list[str] = []
        self.release = threading.Event()  # lets stalled handlers finish at teardown
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404, "Not Found")
                else:
                    route(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def serve(self, path: str, file: Path) -> str:
        """Serve the bytes of `file` at `path` (read now, so the file may change afterwards)."""
        body = Path(file).read_bytes()

        def send(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", "application/zip")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)

        self.routes[path] = send
        return self.base + path

    def serve_dropping(self, path: str, file: Path) -> str:
        """Announce the whole file, send half of it, then close the connection."""
        body = Path(file).read_bytes()

        def send(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.close_connection = True

        self.routes[path] = send
        return self.base + path

    def serve_stalling(self, path: str, file: Path) -> str:
        """Send the headers and a first chunk, then go silent until teardown."""
        body = Path(file).read_bytes()

        def send(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body[:100])
            h.wfile.flush()
            self.release.wait(timeout=30)
            h.close_connection = True

        self.routes[path] = send
        return self.base + path

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def http_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    # A proxy configured in the environment must not intercept requests to our own loopback server.
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    server = LocalServer()
    yield server
    server.close()


@pytest.fixture
def jpeg() -> Callable[..., bytes]:
    return jpeg_bytes


@pytest.fixture
def faces_zip(tmp_path: Path) -> Callable[..., Path]:
    """faces_zip(name, count=3, prefix="faces/", seed=0): a course-layout zip of tiny JPEGs in tmp_path/zips/."""
    folder = tmp_path / "zips"
    folder.mkdir()
    return lambda name, **kwargs: make_faces_zip(folder / name, **kwargs)


@pytest.fixture
def snapshot() -> Callable[[Path], dict[str, str]]:
    return tree_snapshot


@pytest.fixture
def stage_params(tmp_path: Path) -> Callable[..., Params]:
    """Build Params from a copy of the repo's params.yaml with every path inside tmp_path; kwargs set data.*."""
    params_file = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params_file)

    def build(**data: object) -> Params:
        overrides = [f"paths.raw={tmp_path / 'data' / 'raw'}", f"paths.clean={tmp_path / 'data' / 'clean'}"]
        overrides += [f"paths.metrics={tmp_path / 'metrics'}", f"paths.plots={tmp_path / 'plots'}"]
        overrides += [f"data.{key}={value}" for key, value in data.items()]
        return load_params(params_file, overrides)

    return build
