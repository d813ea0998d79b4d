"""A real S3 endpoint on 127.0.0.1 for the sync tests (tests/train/conftest.py) and bench.speed.sync_publish: moto's
server (moto[server]), on a free port.

Usage:
    server = S3Server().start()          # a bucket of its own exists; server.url -> "s3://runs-<port>/sync"
    server.configure(monkeypatch)        # this process's s3fs talks to it (what FSSPEC_S3_ENDPOINT_URL does)
    subprocess.run(..., env={**env, **server.env})   # and subprocesses
    server.stop(); server.start()        # the objects stay: moto keeps them in this process

The server runs in a thread of the test process; the trainers reach it over HTTP like any S3 store. Stopping it
closes the socket, so a client sees what a lost network looks like: connection refused, after its retries.
"""

from __future__ import annotations

import logging
import os
import socket

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.bucket = f"runs-{self.port}"  # moto keeps every server's objects in this process: a bucket each
        self.url = f"s3://{self.bucket}/sync"
        # FSSPEC_<PROTOCOL>_<KWARG>: fsspec passes endpoint_url to every S3FileSystem it makes
        self.env = {**CREDENTIALS, "FSSPEC_S3_ENDPOINT_URL": self.endpoint}
        self._server = None
        self._bucket_made = False

    def start(self) -> S3Server:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        if not self._bucket_made:
            self.fs().mkdir(self.bucket)
            self._bucket_made = True
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def fs(self):
        """An S3 filesystem of this server, outside fsspec's instance cache (what a fresh process would get)."""
        import s3fs

        for key, value in CREDENTIALS.items():
            os.environ.setdefault(key, value)
        return s3fs.S3FileSystem(endpoint_url=self.endpoint, skip_instance_cache=True, key="testing",
                                 secret="testing")  # fmt: skip

    def configure(self, monkeypatch) -> None:
        """Point this process's fsspec at the server, as the env does for a subprocess."""
        import fsspec.config

        for key, value in CREDENTIALS.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": self.endpoint})
