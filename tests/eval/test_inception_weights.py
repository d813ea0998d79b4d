"""Inception weights: download over HTTP (a server on 127.0.0.1), hash checks, the cache, local paths, offline.

The real pytorch-fid weights are on GitHub, which this machine cannot reach: the fixture writes the state dict of
a randomly initialised FID Inception instead, and a local HTTP server serves it.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from eval_project import make_project
from typer.testing import CliRunner

from pipeline.core.errors import UserError
from pipeline.metrics.inception import build_fid_inception, load_backbone
from stages.cli import app


@pytest.fixture(scope="module")
def served(module_tmp) -> Iterator[tuple[str, Path, str]]:
    """(base URL, the folder it serves, sha256) with the file pt_inception-test-<8 hex>.pth in it."""
    root = module_tmp("www")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        state = build_fid_inception().state_dict()
    plain = root / "weights.pth"
    torch.save(state, plain)
    digest = hashlib.sha256(plain.read_bytes()).hexdigest()
    plain.rename(root / f"pt_inception-test-{digest[:8]}.pth")
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root, digest
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_download_verified_by_name_prefix_then_cached(served: tuple[str, Path, str], tmp_path: Path) -> None:
    base, root, digest = served
    url = f"{base}/pt_inception-test-{digest[:8]}.pth"
    backbone = load_backbone(url, "", tmp_path, calibration_seed=0, timeout_s=10, device="cpu")
    assert backbone.name == "pytorch-fid" and backbone.weights_sha256 == digest
    cached = tmp_path / f"pt_inception-test-{digest[:8]}.pth"
    assert cached.is_file() and [p.name for p in tmp_path.iterdir()] == [cached.name]  # no temporaries left

    # Cached: a second load does not need the server (a URL to a closed port would fail otherwise).
    offline = f"http://127.0.0.1:{_closed_port()}/pt_inception-test-{digest[:8]}.pth"
    assert load_backbone(offline, "", tmp_path, 0, timeout_s=5, device="cpu").weights_sha256 == digest


def test_download_refused_when_hash_differs(served: tuple[str, Path, str], tmp_path: Path) -> None:
    base, root, digest = served
    wrong = "0" * 64
    with pytest.raises(UserError, match="expected 0000"):
        load_backbone(f"{base}/pt_inception-test-{digest[:8]}.pth", wrong, tmp_path, 0, timeout_s=10)
    assert list(tmp_path.iterdir()) == []  # nothing cached

    (root / "pt_inception-deadbeef.pth").write_bytes((root / f"pt_inception-test-{digest[:8]}.pth").read_bytes())
    with pytest.raises(UserError, match="expected deadbeef"):
        load_backbone(f"{base}/pt_inception-deadbeef.pth", "", tmp_path, 0, timeout_s=10)


def test_local_path_with_sha256_check(served: tuple[str, Path, str], tmp_path: Path) -> None:
    _, root, digest = served
    path = root / f"pt_inception-test-{digest[:8]}.pth"
    assert load_backbone(str(path), digest, tmp_path, 0, timeout_s=1).weights_sha256 == digest
    with pytest.raises(UserError, match="does not match eval.fid.sha256"):
        load_backbone(str(path), "f" * 64, tmp_path, 0, timeout_s=1)
    with pytest.raises(UserError, match="no such file"):
        load_backbone(str(root / "missing.pth"), "", tmp_path, 0, timeout_s=1)


def test_missing_weights_offline_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    overrides = make_project(tmp_path, faces=4)
    url = f"http://127.0.0.1:{_closed_port()}/pt_inception-2015-12-05-6726825d.pth"
    sets = [a for o in overrides + [f"eval.fid.weights={url}"] for a in ("--set", o)]
    result = CliRunner().invoke(app, ["fid-reference", *sets])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Inception weights unavailable")
    assert str(tmp_path / "cache" / "pt_inception-2015-12-05-6726825d.pth") in lines[0]  # where to put the file


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
