"""DVCLive curves after a kill: the files DVCLive writes in place can be torn, and resuming must still work."""

import csv
import json
from pathlib import Path

from pipeline.train.log import DvcLiveTrainLog


def log_steps(folder: Path, start: int, steps: range) -> DvcLiveTrainLog:
    log = DvcLiveTrainLog(folder, start_step=start)
    for step in steps:
        log.metrics(step, {"loss_d": 0.5 + step, "loss_g": 1.5 + step})
    return log


def curve(folder: Path, name: str) -> list[dict]:
    tsv = folder / "live" / "plots" / "metrics" / f"{name}.tsv"
    return list(csv.DictReader(tsv.open(encoding="utf-8"), delimiter="\t"))


def test_resume_after_a_kill_tore_metrics_json_and_the_last_curve_row(tmp_path):
    folder = tmp_path / "train"
    log_steps(folder, 0, range(0, 40, 4))
    # what a SIGKILL inside DVCLive's writes leaves: an emptied metrics.json, a curve row cut mid-number
    (folder / "live" / "metrics.json").write_text("", encoding="utf-8")
    tsv = folder / "live" / "plots" / "metrics" / "loss_d.tsv"
    tsv.write_text(tsv.read_text(encoding="utf-8") + "40\t40.", encoding="utf-8")

    log_steps(folder, 32, range(36, 48, 4))  # the checkpoint said step 32

    for name, offset in (("loss_d", 0.5), ("loss_g", 1.5)):
        rows = curve(folder, name)
        assert [int(r["step"]) for r in rows] == list(range(0, 48, 4))
        assert [float(r[name]) for r in rows] == [offset + s for s in range(0, 48, 4)]
    latest = json.loads((folder / "live" / "metrics.json").read_text(encoding="utf-8"))
    assert latest["step"] == 44 and latest["loss_d"] == 44.5


def test_a_fresh_run_starts_new_curves(tmp_path):
    folder = tmp_path / "train"
    log_steps(folder, 0, range(0, 20, 4))
    log_steps(folder, 0, range(0, 8, 4))
    assert [int(r["step"]) for r in curve(folder, "loss_g")] == [0, 4]


def test_a_curve_whose_header_was_cut_starts_afresh(tmp_path):
    folder = tmp_path / "train"
    log_steps(folder, 0, range(0, 8, 4))
    (folder / "live" / "plots" / "metrics" / "loss_g.tsv").write_text("ste", encoding="utf-8")
    log_steps(folder, 4, range(8, 16, 4))
    assert [int(r["step"]) for r in curve(folder, "loss_g")] == [8, 12]
    assert [int(r["step"]) for r in curve(folder, "loss_d")] == [0, 4, 8, 12]
