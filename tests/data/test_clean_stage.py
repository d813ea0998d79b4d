"""The clean stage end to end: folder swap, metrics/data.json, preview grid, failures that damage nothing."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL
import pytest
from PIL import Image

from pipeline.core.errors import UserError
from stages.clean import execute

REPO = Path(__file__).resolve().parents[2]


def tree_snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_raw(raw: Path, count: int, source: dict | None = None) -> None:
    faces = raw / "faces"
    faces.mkdir(parents=True)
    for i in range(count):
        rng = np.random.default_rng(i)
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(faces / f"{i}.png")
    if source is not None:
        (raw / "SOURCE.json").write_text(json.dumps(source))


def test_stage_writes_array_manifest_metrics_and_preview(tmp_path, stage_params):
    params = stage_params(image_size=16, min_side=8, preview_count=10)
    source = {"url": "file:///x/faces.zip", "sha256": "ab" * 32, "bytes": 123, "files": 12, "layout": "faces/"}
    write_raw(tmp_path / "data" / "raw", 12, source)
    (tmp_path / "data" / "raw" / "faces" / "12.png").write_bytes(b"")

    execute(params)

    faces = np.load(tmp_path / "data" / "clean" / "faces.npy")
    assert faces.shape == (12, 16, 16, 3) and faces.dtype == np.uint8
    assert len((tmp_path / "data" / "clean" / "manifest.jsonl").read_text().splitlines()) == 13
    metrics = json.loads((tmp_path / "metrics" / "data.json").read_text())
    assert metrics["files"] == 13 and metrics["kept"] == 12 and metrics["dropped"] == 1
    assert metrics["dropped_by_reason"]["empty"] == 1 and metrics["dropped_by_reason"]["duplicate"] == 0
    assert metrics["image_size"] == 16 and metrics["shape"] == [12, 16, 16, 3]
    assert metrics["resample"] == "lanczos" and metrics["resample_filter"].endswith("LANCZOS")
    assert "white" in metrics["alpha_policy"]
    assert metrics["sha256"] == hashlib.sha256(faces.tobytes()).hexdigest()
    assert metrics["source"] == {"url": "file:///x/faces.zip", "sha256": "ab" * 32, "bytes": 123, "pinned": None}
    assert metrics["versions"]["pillow"] == PIL.__version__

    preview = Image.open(tmp_path / "plots" / "clean_preview.png")
    assert preview.size == (2 + 4 * 18, 2 + 3 * 18)  # 10 faces, 4 columns, 2-px borders
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["clean", "raw"]  # no temporary left


def test_missing_source_stamp_records_null_hash(tmp_path, stage_params):
    write_raw(tmp_path / "data" / "raw", 3)
    execute(stage_params(image_size=16, min_side=8))
    metrics = json.loads((tmp_path / "metrics" / "data.json").read_text())
    assert metrics["source"] == {"url": None, "sha256": None, "bytes": None, "pinned": None}


def test_failed_run_leaves_previous_outputs_untouched(tmp_path, stage_params):
    params = stage_params(image_size=16, min_side=8)
    write_raw(tmp_path / "data" / "raw", 3)
    execute(params)
    before = {d: tree_snapshot(tmp_path / d) for d in ("data/clean", "metrics", "plots")}

    for f in (tmp_path / "data" / "raw" / "faces").iterdir():
        f.write_text("no longer an image")
    with pytest.raises(UserError, match="none of the 3 files"):
        execute(params)

    assert {d: tree_snapshot(tmp_path / d) for d in before} == before
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["clean", "raw"]


def test_cli_without_raw_data_says_one_line_and_exits_2(tmp_path, stage_params):
    stage_params()  # writes tmp_path/params.yaml
    proc = subprocess.run(
        [sys.executable, "-m", "stages.cli", "clean", "--params", str(tmp_path / "params.yaml"),
         "--set", f"paths.raw={tmp_path / 'nothing'}", "--set", f"paths.clean={tmp_path / 'clean'}"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: no face folder at ")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "clean").exists()
