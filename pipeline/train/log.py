"""Training curves through DVCLive and sample grids from fixed latents, at stable paths for `dvc plots`.

Usage:
    from pipeline.train.log import DvcLiveTrainLog
    train_log = DvcLiveTrainLog(Path("plots/train"), start_step=0)   # 0: fresh run, clears old curves and grids
    train_log.metrics(50, {"loss_d": 0.7, "loss_g": 1.2, "images_per_s": 900.0})
    train_log.grid("epoch_001", images)                              # uint8 (N, H, W, 3)

Layout under the folder: live/plots/metrics/<name>.tsv (one row per logged step; dvc.yaml declares them as plots
with x: step), live/metrics.json (latest values), grids/<name>.png (epoch_001.png ... and final.png).
Resuming from step S drops curve rows after S (steps a killed run logged but did not checkpoint), so a resumed
run's curves have no duplicated steps. DVCLive writes its files in place, so a kill can tear them: resuming also
drops a torn last curve row and a metrics.json that no longer parses (it holds only the latest values).
DVCLive's own DVC integration runs only under `dvc repro` / `dvc exp run`: elsewhere it would `dvc init` whatever
git repository encloses the working directory.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from pipeline.core.atomic import atomic_write_text
from pipeline.core.image_grid import save_grid


class DvcLiveTrainLog:
    def __init__(self, folder: Path, start_step: int) -> None:
        from dvclive import Live  # imports dvc: only when a run really trains

        class QuietLive(Live):
            def _init_dvc(self) -> None:
                # outside `dvc repro` / `dvc exp run` plain DVCLive runs `dvc init` on the enclosing git repo
                if os.getenv("DVC_ROOT"):
                    super()._init_dvc()

        self.folder = Path(folder)
        self.grids = self.folder / "grids"
        live_dir = self.folder / "live"
        if start_step == 0:
            shutil.rmtree(self.grids, ignore_errors=True)
        else:
            truncate_curves(live_dir / "plots" / "metrics", start_step)
            drop_unreadable_json(live_dir / "metrics.json")
        self.live = QuietLive(
            dir=str(live_dir), resume=start_step > 0, report=None, save_dvc_exp=False, dvcyaml=False
        )

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.live.step = step
        for name, value in values.items():
            self.live.log_metric(name, float(value))
        self.live.make_summary()

    def grid(self, name: str, images: np.ndarray) -> None:
        save_grid(images, self.grids / f"{name}.png", ncol=math.ceil(math.sqrt(len(images))))


def truncate_curves(metrics_dir: Path, last_step: int) -> None:
    """Drop rows with step > last_step, and torn rows, from every DVCLive .tsv curve (rewritten atomically)."""
    if not metrics_dir.is_dir():
        return
    for tsv in sorted(metrics_dir.rglob("*.tsv")):
        text = tsv.read_text(encoding="utf-8", errors="replace")
        reader = csv.DictReader(io.StringIO(text), delimiter="\t")
        rows = list(reader)
        if not reader.fieldnames or "step" not in reader.fieldnames:
            tsv.unlink()  # the kill cut the header: DVCLive starts the curve afresh
            continue
        whole = rows if text.endswith("\n") else rows[:-1]  # no newline: the kill cut the last row
        kept = [r for r in whole if _complete(r) and int(r["step"]) <= last_step]
        if len(kept) == len(rows) and text.endswith("\n"):
            continue
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=reader.fieldnames, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(tsv, out.getvalue())


def _complete(row: dict) -> bool:
    """A row a kill did not cut short: every column present and each value a number."""
    if None in row or any(value is None for value in row.values()):
        return False
    try:
        int(row["step"])
        for value in row.values():
            float(value)
    except ValueError:
        return False
    return True


def drop_unreadable_json(path: Path) -> None:
    """Remove a JSON file a kill left half-written; DVCLive rewrites it at the next logged step."""
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    except (ValueError, UnicodeDecodeError):
        path.unlink()
