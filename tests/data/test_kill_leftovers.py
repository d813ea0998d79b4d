"""A stage killed with SIGKILL leaves hidden temporaries beside its outputs; its next run removes them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from pipeline.core.atomic import make_temp_file, temp_dir_beside
from pipeline.data.fetch import DOWNLOAD_KIND
from stages import clean, download

REPO = Path(__file__).resolve().parents[2]


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def start_stage(stage: str, params_file: Path, overrides: list[str]) -> subprocess.Popen:
    args = [a for o in overrides for a in ("--set", o)]
    return subprocess.Popen(
        [sys.executable, "-m", "stages.cli", stage, "--params", str(params_file), *args],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def kill_when(proc: subprocess.Popen, appeared, timeout_s: float = 60) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not appeared():
        assert proc.poll() is None, f"the stage ended before it could be killed: {proc.stderr.read().decode()[-800:]}"
        assert time.monotonic() < deadline, "the stage never wrote its temporary"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_a_download_killed_mid_transfer_leaves_temporaries_the_next_run_removes(
    tmp_path, http_server, faces_zip, stage_params
):
    stalled = http_server.serve_stalling("/slow.zip", faces_zip("slow.zip", count=3))
    params = stage_params(url=stalled)
    data = tmp_path / "data"
    overrides = [f"paths.raw={params.paths.raw}", f"data.url={stalled}"]
    proc = start_stage("download", tmp_path / "params.yaml", overrides)
    kill_when(proc, lambda: data.is_dir() and any(n.endswith(f".{DOWNLOAD_KIND}.tmp") for n in hidden(data)))
    assert hidden(data)  # the real leftover of a real kill
    make_temp_file(data / "raw")  # and what a kill inside the stamp write or the folder swap leaves
    temp_dir_beside(data / "raw")

    download.execute(stage_params(url=http_server.serve("/faces.zip", faces_zip("faces.zip", count=3))))
    assert hidden(data) == []
    assert sorted(p.name for p in (data / "raw" / "faces").iterdir()) == ["0.jpg", "1.jpg", "2.jpg"]


def test_a_clean_killed_mid_run_leaves_temporaries_the_next_run_removes(tmp_path, stage_params, jpeg):
    faces = tmp_path / "data" / "raw" / "faces"
    faces.mkdir(parents=True)
    for i in range(3000):  # enough work to kill the stage in the middle of it
        (faces / f"{i}.jpg").write_bytes(jpeg(i, size=40))
    params = stage_params(image_size=16, min_side=8)
    overrides = [f"paths.{k}={getattr(params.paths, k)}" for k in ("raw", "clean", "metrics", "plots")]
    proc = start_stage("clean", tmp_path / "params.yaml", [*overrides, "data.image_size=16", "data.min_side=8"])
    data = tmp_path / "data"
    kill_when(proc, lambda: any(n.startswith(".clean.") for n in hidden(data)))
    assert any(n.startswith(".clean.") and n.endswith(".tmp") for n in hidden(data))
    make_temp_file(Path(params.paths.metrics) / "data.json")  # a kill inside the metrics write
    make_temp_file(Path(params.paths.plots) / "clean_preview.png", "png")

    clean.execute(params)
    assert hidden(data) == [] and hidden(tmp_path / "metrics") == [] and hidden(tmp_path / "plots") == []
    assert (data / "clean" / "faces.npy").is_file()
