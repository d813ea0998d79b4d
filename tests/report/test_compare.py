"""`animegan compare` on real DVC experiments: the table, the significance column, the provenance warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.core.errors import UserError
from pipeline.metrics.scores import all_metrics, get_metric
from pipeline.runs.compare import (
    RunMetrics,
    Spread,
    compare_metrics,
    compare_runs,
    format_comparison,
    pool_group,
    welch_test,
)
from stages.cli import app


def test_experiments_table_significance_and_no_warning(exp_repo: Path) -> None:
    result = compare_runs(exp_repo, ["main", "same", "better"], "metrics/eval.json", alpha=0.05)
    assert [r.label for r in result.runs] == ["main", "same", "better"]
    assert result.runs[2].spreads["fid"].mean == pytest.approx(80.0)
    assert result.warnings == []  # same dataset, weights and detector everywhere
    by = {(t.a, t.b, t.metric): t for t in result.tests}
    assert len(by) == 3 * 3  # pairs x (FID, KID, AFD): the runs predate precision/recall and copies
    same = by[("main", "same", "FID")]
    assert same.diff == pytest.approx(0.0) and same.p == pytest.approx(1.0) and not same.significant
    fid = by[("main", "better", "FID")]
    assert fid.significant and fid.p < 1e-6 and fid.verdict == "better better"
    afd = by[("same", "better", "AFD")]
    assert afd.significant and afd.diff == pytest.approx(0.2) and afd.verdict == "better better"


def test_provenance_warning_names_the_field(exp_repo: Path) -> None:
    result = compare_runs(exp_repo, ["same", "otherdata"], "metrics/eval.json", alpha=0.05)
    assert len(result.warnings) == 1
    assert "dataset_sha256 differs (aaaaaaaaaaaa vs cccccccccccc)" in result.warnings[0]


def test_cli_prints_table_test_and_warnings(exp_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(exp_repo)
    out = CliRunner().invoke(
        app,
        ["compare", "main", "better", "otherdata", "--params", str(Path(__file__).parents[2] / "params.yaml")],
    )
    assert out.exit_code == 0, out.output
    assert "| better | 80 ± 0.58 | 0.008 ± 5.8e-05 | 0.7 ± 0.0058 | n/a | n/a | n/a | n/a | n/a | 5 |" in out.stdout
    assert "Precision" not in out.stdout.split("Significance")[1]  # in no run: no test rows
    assert "Welch's two-sided t-test" in out.stdout
    assert "| main | better | FID | -20 |" in out.stdout and "**better better**" in out.stdout
    assert "warning: main vs otherdata: provenance dataset_sha256 differs" in out.stderr


def test_workspace_is_the_default(exp_repo: Path) -> None:
    result = compare_runs(exp_repo, [], "metrics/eval.json", alpha=0.05)
    assert [r.label for r in result.runs] == ["workspace"] and result.tests == []


def test_unknown_revision_and_missing_file_are_user_errors(exp_repo: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="neither a git revision nor a DVC experiment"):
        compare_runs(exp_repo, ["no-such-exp"], "metrics/eval.json", alpha=0.05)
    with pytest.raises(UserError, match="no metrics/nothing.json"):
        compare_runs(exp_repo, ["main"], "metrics/nothing.json", alpha=0.05)
    with pytest.raises(UserError, match="no metrics/eval.json"):
        compare_runs(tmp_path, [], "metrics/eval.json", alpha=0.05)


def test_dvc_exp_show_and_metrics_diff_see_the_experiments(exp_repo: Path, shell) -> None:
    """The README's DVC-native commands, run on the same repository."""
    shown = json.loads(shell(exp_repo, "dvc", "exp", "show", "--json"))
    names = {e["name"] for base in shown for e in (base.get("experiments") or [])}
    assert {"same", "better", "otherdata"} <= names
    diff = json.loads(shell(exp_repo, "dvc", "metrics", "diff", "main", "better", "--json"))
    assert diff["metrics/eval.json"]["fid.mean"]["diff"] == pytest.approx(-20.0)


def _run(label: str, **draws: list[float]) -> RunMetrics:
    spreads = {k: Spread(sum(v) / len(v), 0.0, tuple(v)) for k, v in draws.items()}
    return RunMetrics(label, {}, {m.name: spreads.get(m.name) for m in all_metrics()})


def test_tests_that_cannot_run_say_why() -> None:
    one = _run("a", fid=[10.0])
    two = _run("b", fid=[10.0, 11.0])
    assert welch_test(one, two, get_metric("fid"), 0.05).verdict == "needs at least 2 draws per run"
    flat_a, flat_b = _run("a", fid=[10.0, 10.0]), _run("b", fid=[12.0, 12.0])
    t = welch_test(flat_a, flat_b, get_metric("fid"), 0.05)
    assert t.p is None and t.verdict == "no draw-to-draw spread in either run" and t.diff == 2.0
    assert welch_test(flat_a, flat_b, get_metric("kid"), 0.05).verdict == "missing in one run"
    assert compare_metrics([flat_a, flat_b], 0.05).warnings == []


def test_higher_afd_is_better_lower_fid_is_better() -> None:
    a = _run("a", fid=[50.0, 51.0, 49.0], afd=[0.30, 0.31, 0.29])
    b = _run("b", fid=[60.0, 61.0, 59.0], afd=[0.50, 0.51, 0.49])
    assert welch_test(a, b, get_metric("fid"), 0.05).verdict == "a better"
    assert welch_test(a, b, get_metric("afd"), 0.05).verdict == "b better"


def test_precision_recall_density_coverage_and_copied_are_tested_each_in_its_direction() -> None:
    a = _run("a", precision=[0.60, 0.62, 0.61], recall=[0.5, 0.52, 0.51], copied=[0.0, 0.001, 0.0], density=[1.0, 1.1])
    b = _run("b", precision=[0.70, 0.71, 0.69], recall=[0.5, 0.51, 0.52], copied=[0.05, 0.052, 0.049])
    by = {t.metric: t for t in compare_metrics([a, b], 0.05).tests}
    assert by["Precision"].verdict == "b better" and by["Precision"].p < 0.01
    assert by["Recall"].verdict == "within draw noise"
    assert by["Copied"].verdict == "a better" and by["Copied"].diff == pytest.approx(0.05, abs=1e-3)
    assert by["Density"].verdict == "missing in one run" and "Coverage" not in by and "FID" not in by
    text = format_comparison(compare_metrics([a, b], 0.05))
    assert "| run | FID | KID | AFD | Precision | Recall | Density | Coverage | Copied | draws |" in text
    assert "| a | n/a | n/a | n/a | 0.61 ± 0 | 0.51 ± 0 | 1.05 ± 0 | n/a | 0.0003333 ± 0 | 3 |" in text


def test_incomparable_pairs_are_marked_in_the_table(exp_repo: Path) -> None:
    result = compare_runs(exp_repo, ["same", "otherdata"], "metrics/eval.json", alpha=0.05)
    assert all(not t.comparable for t in result.tests)
    assert "(provenance differs: not comparable)" in format_comparison(result)


def test_seed_groups_test_the_per_run_means_so_retraining_noise_counts() -> None:
    # tight draws, but each retraining lands somewhere else: one pair of runs looks significant, the groups do not
    a_runs = [_run(f"a-seed{i}", fid=[m - 0.5, m, m + 0.5]) for i, m in enumerate((50.0, 60.0, 40.0))]
    b_runs = [_run(f"b-seed{i}", fid=[m - 0.5, m, m + 0.5]) for i, m in enumerate((55.0, 45.0, 65.0))]
    assert welch_test(a_runs[0], b_runs[0], get_metric("fid"), 0.05).verdict == "a-seed0 better"
    a, warnings = pool_group(a_runs)
    b, _ = pool_group(b_runs)
    assert warnings == [] and a.label == "a-seed0+a-seed1+a-seed2" and a.runs == 3
    assert a.spreads["fid"] == Spread(50.0, 10.0, (50.0, 60.0, 40.0)) and a.spreads["kid"] is None
    t = welch_test(a, b, get_metric("fid"), 0.05)
    assert t.verdict == "within seed-to-seed noise" and t.p == pytest.approx(0.6, abs=0.05) and t.diff == 5.0
    assert welch_test(a, a_runs[0], get_metric("fid"), 0.05).verdict == "a seed group is tested only against a group"
    text = format_comparison(compare_metrics([a, b], 0.05))
    assert "| a-seed0+a-seed1+a-seed2 | 50 ± 10 | n/a | n/a | n/a | n/a | n/a | n/a | n/a | 3 runs |" in text
    assert "on the per-run means, so retraining noise is covered too" in text


def test_seed_groups_from_real_experiments_warn_about_a_member_with_other_provenance(exp_repo: Path) -> None:
    result = compare_runs(exp_repo, ["main+same", "better+otherdata"], "metrics/eval.json", alpha=0.05)
    assert [r.label for r in result.runs] == ["main+same", "better+otherdata"]
    assert result.runs[0].spreads["fid"].draws == pytest.approx((100.0, 100.0))
    assert result.warnings[0].startswith("better vs otherdata: provenance dataset_sha256 differs")
    with pytest.raises(UserError, match="the same run is named twice"):
        compare_runs(exp_repo, ["main+same", "same+better"], "metrics/eval.json", alpha=0.05)
    with pytest.raises(UserError, match="a seed group is runs joined by"):
        compare_runs(exp_repo, ["main+"], "metrics/eval.json", alpha=0.05)
