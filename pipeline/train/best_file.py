"""best.pt, the best snapshot kept beside the last generator; and which of the two the later stages draw from.

Usage:
    from pipeline.train.best_file import write_best, copy_last, best_record, chosen_generator
    write_best(Path("models/best.pt"), state_dict, family.config, {"step": 600, "kimg": 38.4, ...})  # if it differs
    copy_last(Path("models/best.pt"), Path("models/generator.pt"))   # no snapshot scored: the last is the only one
    best_record(Path("models/best.pt"))             # its record ({"step", "kimg", "select_by", "scores"}), or None
    chosen = chosen_generator(Path("models"), "best")   # sample.snapshot: best | last
    chosen.path, chosen.snapshot, chosen.record         # the file to load, "best" or "last", best's record or None

best.pt holds what generator.pt holds ({"config", "state_dict"}: load_generator reads it) plus "snapshot", the
record of the step it was taken at and its scores (pipeline/train/snapshots.py keeps it, and its weights, in the
checkpoint too: resume and train.sync carry it there, and best.pt is rewritten from it). A run that scored no
snapshot (train.snapshot_kimg 0, or a run shorter than one interval) writes generator.pt's own bytes there, so the
file always exists for DVC (which stores the two copies once); its lack of a record says it is the last generator,
and "best" then draws the last one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.core.atomic import atomic_write_bytes, torch_bytes
from pipeline.core.errors import UserError, one_line
from pipeline.core.outputs import BEST_FILE, GENERATOR_FILE
from pipeline.train.generator_file import stored_config


@dataclass(frozen=True)
class Chosen:
    path: Path  # the generator file to load
    snapshot: str  # "best" or "last": what was drawn
    record: dict[str, Any] | None  # the best snapshot's record (None: the last generator)


def write_best(path: Path, state_dict: dict[str, torch.Tensor], config: Any, record: dict[str, Any]) -> None:
    """best.pt for these weights (on any device) and record, written atomically unless the file already holds it."""
    weights = {k: v.detach().to("cpu", copy=True) for k, v in state_dict.items()}
    _write_if_changed(Path(path), torch_bytes({"config": stored_config(config), "state_dict": weights,
                                               "snapshot": record}))  # fmt: skip


def copy_last(path: Path, generator: Path) -> None:
    """best.pt as a byte copy of generator.pt: no snapshot was scored."""
    _write_if_changed(Path(path), Path(generator).read_bytes())


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.is_file() and path.read_bytes() == data:
        return
    atomic_write_bytes(path, data)


def best_record(path: Path) -> dict[str, Any] | None:
    """The snapshot record best.pt holds; None when it is a copy of the last generator."""
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise UserError(f"{path}: not a generator file ({one_line(e, 200)})") from None
    record = payload.get("snapshot") if isinstance(payload, dict) else None
    return record if isinstance(record, dict) else None


def chosen_generator(models: Path, snapshot: str) -> Chosen:
    """The generator file sample.snapshot names: best.pt's best snapshot, else (none scored, or snapshot "last")
    generator.pt."""
    models = Path(models)
    last = models / GENERATOR_FILE
    if snapshot == "last":
        return Chosen(last, "last", None)
    if snapshot != "best":
        raise UserError(f"sample.snapshot: {snapshot!r} is neither best nor last")
    best = models / BEST_FILE
    record = best_record(best) if best.is_file() else None
    return Chosen(last, "last", None) if record is None else Chosen(best, "best", record)
