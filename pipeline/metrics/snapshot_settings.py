"""The snapshot settings of train (train.snapshot_metrics, select_by, snapshot_kimg) checked before any work: cheap
to import, so a train stage with snapshots off pays nothing for them.

Usage:
    from pipeline.metrics.snapshot_settings import check_snapshot_params, snapshot_metrics
    check_snapshot_params(params)      # one-line UserError: an unregistered name, select_by not scored, copied,
                                       # and with snapshots on a missing FID reference or anime detector
    snapshot_metrics(params)           # the registered metrics train.snapshot_metrics names, checked

Names are the metric registry's (pipeline.metrics.scores), checked whether snapshots are on or not (a typo in
params.yaml should not wait for the day they are turned on); the files only with train.snapshot_kimg > 0.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.core.config import Params
from pipeline.core.errors import UserError
from pipeline.metrics.registry import DETECTOR, FACES, REFERENCE, Metric
from pipeline.metrics.scores import get_metric


def snapshot_metrics(params: Params) -> list[Metric]:
    """The registered metrics train.snapshot_metrics names, checked; UserError naming the first bad one."""
    t = params.train
    metrics = []
    for name in t.snapshot_metrics:
        try:
            metrics.append(get_metric(name))
        except UserError as e:
            raise UserError(f"train.snapshot_metrics: {e}") from None
    try:
        get_metric(t.select_by)
    except UserError as e:
        raise UserError(f"train.select_by: {e}") from None
    if t.select_by not in t.snapshot_metrics:
        raise UserError(f"train.select_by: {t.select_by} is not scored: add it to train.snapshot_metrics "
                        f"{list(t.snapshot_metrics)} or choose one of them")  # fmt: skip
    for metric in metrics:
        if FACES in metric.needs:
            raise UserError(f"train.snapshot_metrics: {metric.name} needs the copy index of the training faces: "
                            "evaluate scores it, snapshots do not")  # fmt: skip
    return metrics


def check_snapshot_params(params: Params) -> None:
    """The snapshot settings, before any work: registered names always; with snapshots on, the files they need."""
    metrics = snapshot_metrics(params)
    if params.train.snapshot_kimg == 0:
        return
    from pipeline.metrics.fid_reference import META_FILE, STATS_FILE  # the Inception's module: only with snapshots on

    needs = {need: [m.name for m in metrics if need in m.needs] for need in (REFERENCE, DETECTOR)}
    reference = Path(params.paths.fid_reference)
    if needs[REFERENCE] and not all((reference / name).is_file() for name in (STATS_FILE, META_FILE)):
        raise UserError(
            f"train.snapshot_metrics: {', '.join(needs[REFERENCE])} needs the FID reference, not found in "
            f"{reference}/: run `animegan fid-reference` first, or set train.snapshot_kimg=0"
        )
    if not needs[DETECTOR] or params.eval.afd.detector != "anime":
        return
    from pipeline.metrics.detector.model import WEIGHTS_FILE  # imports facenet-pytorch: only when it is needed

    detector = Path(params.paths.detector) / WEIGHTS_FILE
    if not detector.is_file():
        raise UserError(f"train.snapshot_metrics: {', '.join(needs[DETECTOR])} needs the anime detector, not found "
                        f"at {detector}: run `animegan detector` first, or set train.snapshot_kimg=0")  # fmt: skip
