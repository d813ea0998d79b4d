"""tests/train: torch on one thread while these tests run (see train_helpers), and a small face array."""

import numpy as np
import pytest
import torch
from train_helpers import tiny_faces


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def faces() -> np.ndarray:
    return tiny_faces()


@pytest.fixture
def s3(monkeypatch):
    """A real S3 endpoint on 127.0.0.1 (bench/s3_server.py's S3Server), this process configured to reach it."""
    pytest.importorskip("s3fs", reason="the sync extra (pip install -e '.[dev]') brings s3fs")
    pytest.importorskip("moto.server", reason="moto[server] comes with the dev extra")
    from bench.s3_server import S3Server

    server = S3Server().start()
    server.configure(monkeypatch)
    yield server
    server.stop()


@pytest.fixture(params=["folder", "s3"])
def sync_url(request, tmp_path):
    """train.sync: a local folder (a mounted drive) or the S3 endpoint, through the same code."""
    if request.param == "folder":
        return str(tmp_path / "drive" / "animegan")
    return request.getfixturevalue("s3").url
