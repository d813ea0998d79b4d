"""A training's time budget (train.max_minutes): when this process stops training, and the line it says then.

Usage:
    from pipeline.train.budget import Budget, stop_line
    budget = Budget.from_minutes(params.train.max_minutes, started=t0)   # None for 0 or null; t0 from time.time()
    budget.due(dist_info)          # after each step: True on every rank once any rank is past its deadline
    stop_line(summary)             # "stopped at the time budget (train.max_minutes 30) after step 40 of 100 ..."

The budget is per process, not per run: it counts from when this `animegan train` started (the launcher hands its
start to the processes it starts), because what it guards against is the end of a platform's session (Colab,
Kaggle: about 12 h, with no warning before the kill), which comes however long earlier sessions trained. The run's
total training time across resumes is wall_s in the checkpoint and in metrics/train.json.

At the budget the loop (pipeline.train.loop) finishes the step under way, writes a checkpoint, publishes it when
train.sync is set, and returns a summary marked "stopped"; the train stage writes it to metrics/train.json and stops
with pipeline.core.errors.Stopped (exit code 75), so `dvc repro` does not record train as done and a rerun resumes
bit-identically. The check runs after every step, at least one step runs, and a step that ends the training
anyway ends it normally. Under DDP the ranks agree through one small CPU all-reduce per step, so all of them
stop after the same step. The wall clock (time.time) is used because the deadline crosses processes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pipeline.core.distributed import DistInfo

STOPPED = "time budget"  # the summary's "stopped" value
STOP_REPORT_ENV = "ANIMEGAN_STOP_REPORT"  # a file for the summary of a run stopped at its time budget (JSON)


@dataclass(frozen=True)
class Budget:
    max_minutes: float
    deadline: float  # time.time() at which training stops

    @classmethod
    def from_minutes(cls, max_minutes: float | None, started: float | None = None) -> Budget | None:
        """The budget of max_minutes counted from `started` (time.time(); default now), or None for 0 or None."""
        if not max_minutes:
            return None
        start = time.time() if started is None else started
        return cls(float(max_minutes), start + float(max_minutes) * 60.0)

    def due(self, dist_info: DistInfo) -> bool:
        return dist_info.any_rank(time.time() >= self.deadline)


def stopped_summary(summary: dict[str, Any], budget: Budget, total_steps: int) -> dict[str, Any]:
    """metrics/train.json of a run stopped at its budget: the summary so far, what stopped it, the steps asked."""
    return {**summary, "stopped": STOPPED, "max_minutes": budget.max_minutes, "total_steps": total_steps}


def stop_line(summary: dict[str, Any]) -> str:
    """How far a stopped run got and how to continue, in one line."""
    minutes = summary["wall_s"] / 60
    return (
        f"stopped at the time budget (train.max_minutes {summary['max_minutes']:g}) after step {summary['steps']} of "
        f"{summary['total_steps']} ({summary['images_seen']:,} images seen, {minutes:.1f} min of training in all); "
        "the checkpoint is written: run the same command again to continue"
    )
