"""`animegan download` as a user runs it: a real subprocess, real params file, real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def animegan(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("animegan")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "stages.cli"]
    env = {**os.environ, "ANIMEGAN_PROGRESS": "0"}
    return subprocess.run(command + list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_cli_error_is_one_line_and_exit_code_2(http_server, faces_zip, stage_params, snapshot, tmp_path) -> None:
    stage_params()  # copies params.yaml into tmp_path
    raw = tmp_path / "data" / "raw"

    def download(url: str) -> subprocess.CompletedProcess[str]:
        return animegan("download", "--params", "params.yaml", "--set", f"paths.raw={raw}", "--set", f"data.url={url}",
                        cwd=tmp_path)  # fmt: skip

    ok = download(faces_zip("faces.zip").as_uri())
    assert ok.returncode == 0, ok.stderr
    assert json.loads((raw / "SOURCE.json").read_text())["files"] == 3
    assert "WARNING" in ok.stderr and "data.sha256:" in ok.stderr

    before = snapshot(raw.parent)
    failed = download(f"{http_server.base}/gone.zip")
    assert failed.returncode == 2
    assert failed.stderr.splitlines() == [
        f"error: download failed: HTTP 404 Not Found from {http_server.base}/gone.zip"
    ]
    assert "Traceback" not in failed.stdout + failed.stderr
    assert snapshot(raw.parent) == before
