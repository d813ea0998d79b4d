"""The metric registry: each metric declares itself once, and evaluate, the table, `compare` and `report` read it.

Usage:
    from pipeline.metrics.registry import FEATURES, REFERENCE, Score, register_metric

    @register_metric("fid", label="FID", better="lower", needs=(FEATURES, REFERENCE))
    def fid(draw, resources) -> float:           # draw: pipeline.metrics.resources.Draw (images, features)
        return fid_of_features(draw.features, resources.reference.mean, resources.reference.cov)

    from pipeline.metrics.scores import all_metrics, get_metric     # the built-in metrics, registered
    [m.name for m in all_metrics()]      # ["fid", "kid", "afd", "precision", ..., "copied"]: the tables' order
    get_metric("kid").lower_is_better    # True

A metric is a function that scores one draw (a float, or a Score with per-draw details) under a declaration: its
key in eval.json, the label the tables show, which direction is better, what it needs loaded (NEEDS), and
optionally `finish` (numbers computed once after every draw, placed beside its entry: afd_real), `extras` (their
keys and labels, for the tables; `real_value` names the one measured on real faces), `provenance` (the settings
its numbers depend on, for eval.json's provenance), `comparable` (those provenance keys two runs must share to be
compared) and `note` (a word on reading it, in the tables' notes). Scoring draws with them is
pipeline.metrics.scoring; the built-ins live one per module in pipeline/metrics/scores/, whose import order is the
order of the tables' columns. Nothing here imports numpy or torch: `compare` and `report` read the declarations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# What a metric can need (Resources holds them; pipeline.metrics.resources.NEED_FIELDS maps each to its fields)
IMAGES = "images"  # the draw's uint8 images: always there
FEATURES = "features"  # the draw's Inception features: needs the backbone
REFERENCE = "reference"  # the FID reference (pipeline.metrics.fid_reference)
DETECTOR = "detector"  # the AFD face detector
FACES = "faces"  # the training faces, through the copy check and its calibration
NEEDS = (IMAGES, FEATURES, REFERENCE, DETECTOR, FACES)
BETTER = ("lower", "higher")


@dataclass
class Score:
    """A draw's value, with details: `per_draw` values are listed beside the draws in the metric's entry
    (kid's subset_std); `keep` is anything `finish` needs from that draw (the copy check's findings)."""

    value: float
    per_draw: dict[str, Any] = field(default_factory=dict)
    keep: Any = None


class Skip(Exception):
    """Raised by a metric's score function when a draw cannot be scored (too few images): the reason is logged
    once, and the draw counts for no value of that metric."""


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    better: str  # "lower" or "higher"
    needs: tuple[str, ...]
    score: Callable[..., float | Score]  # (draw, resources) -> a float or a Score
    finish: Callable[..., dict[str, Any]] | None = None  # (entry, scores, resources) -> values beside the entry
    extras: tuple[tuple[str, str], ...] = ()  # (key, label) of the numbers finish adds beside the entry
    real_value: str = ""  # the extra that is the same measure on real faces: a reference line on the report's chart
    provenance: Callable[..., dict[str, Any]] | None = None  # (resources) -> settings its numbers depend on
    comparable: tuple[str, ...] = ()  # provenance keys two runs must share for their numbers to compare
    note: str = ""  # a word on reading it, for the tables' notes ("about 1 when samples match the data")

    @property
    def lower_is_better(self) -> bool:
        return self.better == "lower"


_REGISTRY: dict[str, Metric] = {}


def register_metric(
    name: str,
    label: str,
    better: str,
    needs: tuple[str, ...],
    finish: Callable[..., dict[str, Any]] | None = None,
    extras: tuple[tuple[str, str], ...] = (),
    provenance: Callable[..., dict[str, Any]] | None = None,
    comparable: tuple[str, ...] = (),
    note: str = "",
    real_value: str = "",
) -> Callable[[Callable[..., float | Score]], Callable[..., float | Score]]:
    """Decorator: register the function as the score of metric `name` (a new name; its position is the order of
    registration). Returns the function unchanged."""
    if better not in BETTER:
        raise ValueError(f"metric {name!r}: better must be one of {BETTER}, not {better!r}")
    unknown = [n for n in needs if n not in NEEDS]
    if unknown:
        raise ValueError(f"metric {name!r}: unknown needs {unknown} (known: {', '.join(NEEDS)})")

    def register(score: Callable[..., float | Score]) -> Callable[..., float | Score]:
        if name in _REGISTRY:
            raise ValueError(f"metric {name!r} is registered twice")
        _REGISTRY[name] = Metric(
            name, label, better, tuple(needs), score, finish, extras, real_value, provenance, comparable, note
        )
        return score

    return register


def unregister(name: str) -> None:
    """Forget metric `name` (a test's own metric, once the test is done)."""
    _REGISTRY.pop(name, None)


def registered() -> tuple[Metric, ...]:
    """Every metric registered so far, in registration order (pipeline.metrics.scores registers the built-ins)."""
    return tuple(_REGISTRY.values())


def lookup(name: str) -> Metric | None:
    return _REGISTRY.get(name)
