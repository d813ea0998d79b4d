"""The values a training step logs, summed on the device between two syncs (one GPU sync per log, not per step).

Usage:
    from pipeline.train.meter import Meter
    meter = Meter(family.logged, device)        # the family declares what its steps log
    meter.add({"loss_d": t, "loss_g": t2})      # every step; a value the family did not declare: ValueError
    values, steps_per_s = meter.sync(dist_info, step, checkpoint_path)   # means over all ranks since the last sync

A value is averaged over the steps that reported it (the penalties only on their lazy-regularisation steps).
A NaN or inf mean stops the run with UserError before any checkpoint is written, so the last good one stays.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch

from pipeline.core.distributed import DistInfo
from pipeline.train.health import check_finite_values


class Meter:
    def __init__(self, names: Sequence[str], device: torch.device) -> None:
        self.names = tuple(names)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.sums = torch.zeros(2, len(self.names), device=device, dtype=torch.float64)  # sums, counts
        self.t_interval, self.steps_interval = time.perf_counter(), 0

    def add(self, values: dict[str, torch.Tensor]) -> None:
        undeclared = [name for name in values if name not in self.index]
        if undeclared:
            raise ValueError(f"the step logged {undeclared}, which its family does not declare in `logged` "
                             f"{self.names}: declare them (pipeline/train/families)")  # fmt: skip
        for name, value in values.items():
            i = self.index[name]
            self.sums[0, i] += value.double()
            self.sums[1, i] += 1
        self.steps_interval += 1

    def sync(self, dist_info: DistInfo, step: int, checkpoint: Path) -> tuple[dict[str, float], float]:
        """Means over every rank since the last sync (NaN/inf stops the run), and this rank's steps per second."""
        sums, counts = dist_info.all_reduce_sum(self.sums.clone()).tolist()
        self.sums.zero_()
        values = {name: s / n for name, s, n in zip(self.names, sums, counts, strict=True) if n > 0}
        check_finite_values(values, step, checkpoint)
        now = time.perf_counter()
        rate = self.steps_interval / max(now - self.t_interval, 1e-9)
        self.t_interval, self.steps_interval = now, 0
        return values, rate
