"""The built-in metrics, one module each, registered on import in the order the tables show them; and the lookups.

Usage:
    from pipeline.metrics.scores import all_metrics, get_metric
    [m.name for m in all_metrics()]    # ["fid", "kid", "afd", "precision", "recall", "density", "coverage", "copied"]
    get_metric("afd").label            # "AFD"; an unknown name is a UserError naming the known ones

A new metric is a module here that declares it with @register_metric (pipeline.metrics.registry; fid.py is the
shortest example), its import line below (its place in the tables' columns) and, when it has settings, its section
under eval in params.yaml. evaluate, its table, `compare` and `report` then show it with nothing else changed.
"""

from __future__ import annotations

from pipeline.core.errors import UserError
from pipeline.metrics.registry import Metric, lookup, registered

# The import order is the order of the tables' columns.
# isort: off
from pipeline.metrics.scores import fid  # noqa: F401
from pipeline.metrics.scores import kid  # noqa: F401
from pipeline.metrics.scores import afd  # noqa: F401
from pipeline.metrics.scores import prdc  # noqa: F401
from pipeline.metrics.scores import copied  # noqa: F401
# isort: on


def all_metrics() -> tuple[Metric, ...]:
    """Every registered metric: the built-ins above, then any registered later (a test's), in that order."""
    return registered()


def get_metric(name: str) -> Metric:
    metric = lookup(name)
    if metric is None:
        known = ", ".join(m.name for m in registered())
        raise UserError(f"unknown metric {name!r} (known: {known})")
    return metric
