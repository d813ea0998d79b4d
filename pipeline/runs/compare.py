"""Compare runs' metrics (every registered metric: FID, KID, AFD, precision/recall/density/coverage, copied share,
see pipeline.metrics.scores): is each difference larger than draw-to-draw noise?

Usage:
    from pipeline.runs.compare import compare_runs, format_comparison
    result = compare_runs(".", ["main", "exp-wgan"], eval_path="metrics/eval.json", alpha=0.05)
    print(format_comparison(result))       # Markdown: one table of mean ± std, one of pairwise tests
    result.warnings                        # one line per provenance field that differs between two runs

Each run is the workspace (rev None), a git revision or a DVC experiment name (see pipeline.runs.revisions). The
test is Welch's two-sided t-test (unequal variances) on the per-draw values that evaluate stores in
eval.json. It measures only the noise of drawing new samples from the same trained generator, not the noise of
training again with another seed, and the p-values are not corrected for the number of comparisons.

A group "a+b+c" pools runs of one setup trained with different seeds (`animegan exp NAME --seed S`): its value per
metric is the mean over its runs of each run's mean, and two groups are tested on those per-run means, so the
verdict covers retraining noise too. A group is only tested against another group.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from warnings import catch_warnings, simplefilter

from scipy import stats

from pipeline.core.errors import UserError
from pipeline.metrics.registry import Metric
from pipeline.metrics.scores import all_metrics
from pipeline.runs.revisions import Run, open_run

# Provenance fields that make two runs' numbers incomparable when they differ, whatever the metric; each metric
# adds its own (pipeline.metrics.registry.Metric.comparable: the detector, precision's k, ...). Package versions
# and the device change numbers only in the last digits, so they are shown by the report but not warned about.
COMPARABILITY_KEYS = (
    "dataset_sha256",
    "fid_backbone",
    "weights_sha256",
    "image_count",
    "reference_count",
    "repeats",
    "jpeg_quality",
)

TEST_NAME = "Welch's two-sided t-test (unequal variances) on the per-draw values"
GROUP_TEST_NAME = "between groups (a+b+...), on the per-run means, so retraining noise is covered too"


@dataclass(frozen=True)
class Spread:
    mean: float
    std: float
    draws: tuple[float, ...]

    @classmethod
    def from_eval(cls, entry: Any) -> Spread | None:
        if not isinstance(entry, dict) or "mean" not in entry:
            return None
        draws = tuple(float(x) for x in entry.get("draws") or ())
        return cls(float(entry["mean"]), float(entry.get("std", 0.0)), draws)


@dataclass
class RunMetrics:
    label: str
    eval: dict[str, Any]
    spreads: dict[str, Spread | None]
    runs: int = 1  # > 1: a seed group, whose Spread.draws are its runs' means

    @property
    def provenance(self) -> dict[str, Any]:
        prov = self.eval.get("provenance")
        return prov if isinstance(prov, dict) else {}


@dataclass(frozen=True)
class PairTest:
    a: str
    b: str
    metric: str
    diff: float | None  # mean of b minus mean of a
    p: float | None  # None: the test cannot be run (why in `verdict`)
    verdict: str
    significant: bool
    comparable: bool = True  # False: the two runs' provenance differs (see Comparison.warnings)


@dataclass
class Comparison:
    runs: list[RunMetrics]
    tests: list[PairTest]
    alpha: float
    warnings: list[str] = field(default_factory=list)


def load_run_metrics(run: Run, eval_path: str) -> RunMetrics:
    data = run.read_json(eval_path)
    if data is None:
        raise UserError(f"{run.label}: no {eval_path} (run `dvc repro` or `animegan evaluate` there first)")
    if not isinstance(data, dict):
        raise UserError(f"{run.label}: {eval_path} is not a JSON object")
    return RunMetrics(run.label, data, spreads_of(data))


def spreads_of(data: dict[str, Any]) -> dict[str, Spread | None]:
    """Each registered metric's spread in an eval.json; runs evaluated before a metric existed have None."""
    return {m.name: Spread.from_eval(data.get(m.name)) for m in all_metrics()}


def comparability_keys() -> tuple[str, ...]:
    return tuple(dict.fromkeys([*COMPARABILITY_KEYS, *(key for m in all_metrics() for key in m.comparable)]))


def compare_runs(root: str | Path, revs: list[str | None], eval_path: str, alpha: float) -> Comparison:
    """Load eval.json at each rev (None: the workspace) and test every pair of runs on every metric."""
    if not 0 < alpha < 1:
        raise UserError(f"alpha must be between 0 and 1 (got {alpha})")
    runs, warnings = [], []
    for rev in revs or [None]:
        parts = rev.split("+") if rev else [rev]
        if len(parts) > 1 and not all(parts):
            raise UserError(f"{rev!r}: a seed group is runs joined by '+', e.g. wgan-seed1+wgan-seed2")
        members = [load_run_metrics(open_run(root, part), eval_path) for part in parts]
        if len(members) == 1:
            runs.append(members[0])
        else:
            group, differs = pool_group(members)
            runs.append(group)
            warnings += differs
    labels = [m for r in runs for m in r.label.split("+")]
    if len(set(labels)) != len(labels):
        raise UserError(f"the same run is named twice: {', '.join(labels)}")
    result = compare_metrics(runs, alpha)
    result.warnings[:0] = warnings
    return result


def pool_group(members: list[RunMetrics]) -> tuple[RunMetrics, list[str]]:
    """One RunMetrics for runs of one setup (other seeds): per metric, the spread of the runs' means."""
    spreads: dict[str, Spread | None] = {}
    for key in (m.name for m in all_metrics()):
        found = [m.spreads.get(key) for m in members]
        means = tuple(s.mean for s in found if s is not None)
        if len(means) < len(members):
            spreads[key] = None
            continue
        mean = sum(means) / len(means)
        std = math.sqrt(sum((v - mean) ** 2 for v in means) / (len(means) - 1))
        spreads[key] = Spread(mean, std, means)
    label = "+".join(m.label for m in members)
    warnings = [w for m in members[1:] for w in provenance_warnings(members[0], m)]
    return RunMetrics(label, {"provenance": members[0].provenance}, spreads, runs=len(members)), warnings


def compare_metrics(runs: list[RunMetrics], alpha: float) -> Comparison:
    tests, warnings = [], []
    for a, b in itertools.combinations(runs, 2):
        differs = provenance_warnings(a, b)
        warnings += differs
        for metric in all_metrics():
            if a.spreads.get(metric.name) is None and b.spreads.get(metric.name) is None:
                continue  # neither run has it (evaluated before the metric existed): no row to read past
            test = welch_test(a, b, metric, alpha)
            tests.append(dataclasses.replace(test, comparable=not differs))
    return Comparison(runs, tests, alpha, warnings)


def welch_test(a: RunMetrics, b: RunMetrics, metric: Metric, alpha: float) -> PairTest:
    sa, sb, name = a.spreads.get(metric.name), b.spreads.get(metric.name), metric.label
    if sa is None or sb is None:
        return PairTest(a.label, b.label, name, None, None, "missing in one run", False)
    diff = sb.mean - sa.mean
    if (a.runs > 1) != (b.runs > 1):
        return PairTest(a.label, b.label, name, diff, None, "a seed group is tested only against a group", False)
    if len(sa.draws) < 2 or len(sb.draws) < 2:
        return PairTest(a.label, b.label, name, diff, None, "needs at least 2 draws per run", False)
    if _constant(sa.draws) and _constant(sb.draws):
        # No spread was measured in either run, so noise cannot be estimated: say so rather than claim p = 0.
        return PairTest(a.label, b.label, name, diff, None, "no draw-to-draw spread in either run", False)
    with catch_warnings():  # one side with (nearly) no spread is fine for Welch; scipy warns anyway
        simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(sb.draws, sa.draws, equal_var=False).pvalue)
    if math.isnan(p):
        return PairTest(a.label, b.label, name, diff, None, "test undefined for these draws", False)
    if p >= alpha:
        noise = "seed-to-seed noise" if a.runs > 1 else "draw noise"
        return PairTest(a.label, b.label, name, diff, p, f"within {noise}", False)
    better = b.label if (diff < 0) == metric.lower_is_better else a.label
    return PairTest(a.label, b.label, name, diff, p, f"{better} better", True)


def provenance_warnings(a: RunMetrics, b: RunMetrics) -> list[str]:
    out = []
    pa, pb = a.provenance, b.provenance
    for key in comparability_keys():
        va, vb = pa.get(key), pb.get(key)
        if va != vb:
            out.append(
                f"{a.label} vs {b.label}: provenance {key} differs ({_short(va)} vs {_short(vb)}), "
                "so their numbers are not comparable"
            )
    return out


TEST_HEADERS = ["A", "B", "metric", "B − A", "p", "verdict"]


def summary_headers() -> list[str]:
    return ["run", *(m.label for m in all_metrics()), "draws"]


def reading_note() -> str:
    """How to read the summary: which direction is better for each metric, with each metric's own note."""

    def words(metrics: list[Metric]) -> str:
        named = [m.label + (f" ({m.note})" if m.note else "") for m in metrics]
        return named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]

    sides = [(side, [m for m in all_metrics() if m.better == side]) for side in ("lower", "higher")]
    better = ", ".join(f"{side} {words(metrics)}" for side, metrics in sides if metrics)
    return f"mean ± std over the repeated draws; {better} are better."


def comparison_rows(result: Comparison) -> tuple[list[list[str]], list[list[str]]]:
    """Cells of the summary table (one row per run) and of the test table (one row per pair and metric)."""
    summary = []
    for run in result.runs:
        draws = max((len(s.draws) for s in run.spreads.values() if s is not None), default=0)
        count = f"{run.runs} runs" if run.runs > 1 else str(draws)
        summary.append([run.label, *(format_spread(run.spreads.get(m.name)) for m in all_metrics()), count])
    tests = []
    for t in result.tests:
        verdict = f"**{t.verdict}**" if t.significant else t.verdict
        if not t.comparable:
            verdict += " (provenance differs: not comparable)"
        diff = "n/a" if t.diff is None else f"{t.diff:+.4g}"
        tests.append([t.a, t.b, t.metric, diff, "n/a" if t.p is None else f"{t.p:.3g}", verdict])
    return summary, tests


def significance_note(result: Comparison) -> str:
    note = (
        f"Significance: {TEST_NAME}; significant when p < {result.alpha:g}. It covers sampling noise only "
        "(not retraining with another seed) and is not corrected for multiple comparisons."
    )
    if any(r.runs > 1 for r in result.runs):
        note += f" Seed groups: the same test {GROUP_TEST_NAME}."
    return note


def format_comparison(result: Comparison) -> str:
    """Markdown tables (they read as plain text in a terminal too)."""
    summary, tests = comparison_rows(result)
    grouped = any(r.runs > 1 for r in result.runs)
    note = reading_note() + (" A seed group's mean ± std is over its runs' means." if grouped else "")
    lines = [markdown_table(summary_headers(), summary), "", note]
    if tests:
        lines += ["", significance_note(result), "", markdown_table(TEST_HEADERS, tests)]
    return "\n".join(lines) + "\n"


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def format_spread(s: Spread | None) -> str:
    if s is None:
        return "n/a"
    return f"{s.mean:.4g} ± {s.std:.2g}"


def _constant(values: tuple[float, ...]) -> bool:
    # relative: means of equal draws summed in another order differ in the last bit
    return max(values) - min(values) <= 1e-12 * max(1.0, *(abs(v) for v in values))


def _short(value: Any) -> str:
    if value is None:
        return "absent"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    if isinstance(value, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return text[:12]
    return text if len(text) <= 60 else text[:57] + "..."
