"""Score draws of images on registered metrics with loaded resources: the one call evaluate (and a snapshot scorer)
makes.

Usage:
    from pipeline.metrics.scoring import score_draw, score_draws
    metrics = score_draws(draws, resources)                  # every registered metric -> eval.json's metric part
    metrics = score_draws(draws, resources, ["fid", "kid"])  # only these
    metrics["fid"]        # {"mean", "std", "draws": [...]}; kid adds "subset_std", afd puts afd_real, afd_rel beside
    values = score_draw(images, resources, ["fid", "kid"])   # one draw: {"fid": 231.4, "kid": 0.21}

`draws` is any iterable of uint8 (N, H, W, 3) arrays, consumed one at a time so only one draw is in memory;
`resources` (pipeline.metrics.resources.Resources) holds what the metrics need, loaded once. Metrics are scored in
registration order (pipeline.metrics.scores), each draw's Inception features extracted once for all of them.
`std` is the sample standard deviation over draws (ddof=1; 0.0 for a single draw): the spread a score moves by when
the same model is sampled again. A metric that cannot score a draw (precision with too few images) leaves it out,
and one warning says why; a metric no draw could score has no entry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np

from pipeline.core.errors import UserError
from pipeline.metrics.registry import Metric, Score, Skip
from pipeline.metrics.resources import Draw, Resources
from pipeline.metrics.scores import all_metrics, get_metric

log = logging.getLogger(__name__)


def summary(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, np.float64)
    std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return {"mean": float(arr.mean()), "std": std, "draws": [float(v) for v in arr]}


def chosen(names: Iterable[str] | None, resources: Resources) -> list[Metric]:
    """The metrics called `names` (None: every registered one), each checked to have what it needs loaded."""
    metrics = list(all_metrics()) if names is None else [get_metric(name) for name in names]
    for metric in metrics:
        missing = resources.missing(metric.needs)
        if missing:
            raise UserError(f"metric {metric.name} needs {', '.join(missing)}, which this scorer did not load")
    return metrics


def score_draws(
    draws: Iterable[np.ndarray], resources: Resources, names: Iterable[str] | None = None
) -> dict[str, Any]:
    metrics = chosen(names, resources)
    scores: dict[str, list[Score]] = {m.name: [] for m in metrics}
    skipped: dict[str, list[str]] = {}  # reason -> metrics
    count = 0
    for d, images in enumerate(draws):
        found = _score(Draw(d, images, resources), metrics, skipped)
        for name, score in found.items():
            scores[name].append(score)
        log.info("draw %d: %d images, %s", d, len(images), ", ".join(f"{k} {s.value:.6g}" for k, s in found.items()))
        count += 1
    if not count:
        raise ValueError("no draws to score")
    for reason, skipped_names in skipped.items():
        log.warning("%s skipped: %s", ", ".join(dict.fromkeys(skipped_names)), reason)
    out: dict[str, Any] = {}
    for metric in metrics:
        if scores[metric.name]:
            out[metric.name] = entry = _entry(scores[metric.name])
            if metric.finish is not None:
                out.update(metric.finish(entry, scores[metric.name], resources))
    return out


def score_draw(images: np.ndarray, resources: Resources, names: Iterable[str], index: int = 0) -> dict[str, float]:
    """One draw's value of each named metric; one that cannot score it is absent (a warning says why)."""
    skipped: dict[str, list[str]] = {}
    found = _score(Draw(index, images, resources), chosen(names, resources), skipped)
    for reason, skipped_names in skipped.items():
        log.warning("%s skipped: %s", ", ".join(skipped_names), reason)
    return {name: score.value for name, score in found.items()}


def _score(draw: Draw, metrics: list[Metric], skipped: dict[str, list[str]]) -> dict[str, Score]:
    found = {}
    for metric in metrics:
        try:
            value = metric.score(draw, draw.resources)
        except Skip as reason:
            skipped.setdefault(str(reason), []).append(metric.name)
            continue
        found[metric.name] = value if isinstance(value, Score) else Score(float(value))
    return found


def _entry(scores: list[Score]) -> dict[str, Any]:
    """mean, std and the per-draw values, with each per-draw detail listed beside them."""
    entry = summary([s.value for s in scores])
    for key in scores[0].per_draw:
        entry[key] = [s.per_draw[key] for s in scores]
    return entry
