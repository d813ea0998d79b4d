"""Training curves through DVCLive and sample grids from fixed latents, at stable paths for `dvc plots`.

Usage:
    from pipeline.train_log import DvcLiveTrainLog
    train_log = DvcLiveTrainLog(Path("plots/train"), start_step=0)   # 0: fresh run, clears old curves and grids
    train_log.metrics(50, {"loss_d": 0.7, "loss_g": 1.2, "images_per_s": 900.0})
    train_log.grid("epoch_001", images)                              # uint8 (N, H, W, 3)

Layout under the folder: live/plots/metrics/<name>.tsv (one row per logged step; dvc.yaml declares them as plots
with x: step), live/metrics.json (latest values), grids/<name>.png (epoch_001.png ... and final.png).
Resuming from step S drops curve rows after S (steps a killed run logged but did not checkpoint), so a resumed
run's curves have no duplicated steps. DVCLive's own DVC integration runs only under `dvc repro` / `dvc exp run`:
elsewhere it would `dvc init` whatever git repository encloses the working directory.
"""

from __future__ import annotations

import csv
import io
import math
import os
import shutil
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_write_text
from pipeline.image_grid import save_grid


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
    """Drop rows with step > last_step from every DVCLive .tsv curve (rewritten atomically)."""
    if not metrics_dir.is_dir():
        return
    for tsv in sorted(metrics_dir.rglob("*.tsv")):
        rows = list(csv.DictReader(io.StringIO(tsv.read_text(encoding="utf-8")), delimiter="\t"))
        if not rows or "step" not in rows[0]:
            continue
        kept = [r for r in rows if int(r["step"]) <= last_step]
        if len(kept) == len(rows):
            continue
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(tsv, out.getvalue())
