"""The metric registry: one declaration puts a metric in eval.json, evaluate's table, `compare` and the report.

A toy metric (the mean brightness of a draw) is declared here, and only here, then a real tiny project is evaluated
(untrained Inception, MTCNN, cartoon faces: tests/eval/eval_project.py) and compared and reported as a user would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from eval_project import make_project, project_params
from typer.testing import CliRunner

from pipeline.core.errors import UserError
from pipeline.metrics.evaluation import load_evaluation
from pipeline.metrics.image_folder import read_image_folder
from pipeline.metrics.registry import FEATURES, IMAGES, REFERENCE, Score, Skip, register_metric, unregister
from pipeline.metrics.resources import Resources
from pipeline.metrics.scores import all_metrics, get_metric
from pipeline.metrics.scoring import score_draw, score_draws
from pipeline.runs.compare import compare_runs, format_comparison
from pipeline.runs.report import build_report
from stages import evaluate, fid_reference, sample
from stages.cli import app

BUILT_IN = ["fid", "kid", "afd", "precision", "recall", "density", "coverage", "copied"]


def brightness(draw, resources) -> Score:
    pixels = np.asarray(draw.images, np.float64)
    return Score(float(pixels.mean() / 255), per_draw={"darkest": float(pixels.min() / 255)})


@pytest.fixture
def toy_metric() -> Iterator[str]:
    register_metric(
        "brightness", label="Brightness", better="higher", needs=(IMAGES,), note="the toy metric of this test",
        provenance=lambda resources: {"brightness_scale": 255}, comparable=("brightness_scale",),
    )(brightness)  # fmt: skip
    try:
        yield "brightness"
    finally:
        unregister("brightness")


@pytest.fixture(scope="module")
def project(module_tmp) -> tuple[Path, list[str]]:
    root = module_tmp("registryproj")
    overrides = make_project(root)
    params = project_params(overrides)
    fid_reference.execute(params)
    sample.execute(params)
    return root, overrides


def test_a_declared_metric_reaches_eval_json_the_table_compare_and_the_report(
    project: tuple[Path, list[str]], toy_metric: str
) -> None:
    root, overrides = project
    params = project_params(overrides)
    metrics = evaluate.execute(params)

    saved = json.loads((root / "metrics" / "eval.json").read_text())
    entry = saved["brightness"]
    assert len(entry["draws"]) == 2 and len(entry["darkest"]) == 2 and 0 < entry["mean"] < 1
    assert entry["mean"] == pytest.approx(np.mean(entry["draws"])) and all(d >= 0 for d in entry["darkest"])
    assert saved["provenance"]["brightness_scale"] == 255
    assert [k for k in BUILT_IN if k in saved] == BUILT_IN  # the built-ins are all still there

    table = evaluate.format_table(metrics)
    assert table.splitlines()[9].startswith("brightness")  # after the eight built-ins, in registration order

    compared = format_comparison(compare_runs(root, [], f"{root}/metrics/eval.json", alpha=0.05))
    assert "| Brightness |" in compared.splitlines()[0] and "Brightness (the toy metric of this test)" in compared
    assert f"{entry['mean']:.4g} ± {entry['std']:.2g}" in compared

    report = build_report(root, [], metrics_dir="metrics", plots_dir="plots")
    row = f"| Brightness | {entry['mean']:.4g} ± {entry['std']:.2g} | 2 |"
    assert row in report.markdown and "Brightness per draw (higher is better)" in report.html

    unregister(toy_metric)  # gone from the registry: gone from the next eval.json, and compare shows no column
    evaluate.execute(params)
    assert "brightness" not in json.loads((root / "metrics" / "eval.json").read_text())
    assert "Brightness" not in format_comparison(compare_runs(root, [], f"{root}/metrics/eval.json", alpha=0.05))


def test_the_built_in_metrics_in_table_order() -> None:
    assert [m.name for m in all_metrics()] == BUILT_IN
    assert [m.lower_is_better for m in all_metrics()] == [True, True, False, False, False, False, False, True]
    with pytest.raises(UserError, match="unknown metric 'fdi' .*known: fid, kid"):
        get_metric("fdi")


def test_a_declaration_is_checked_when_made() -> None:
    with pytest.raises(ValueError, match="better must be one of"):
        register_metric("x", label="X", better="up", needs=())
    with pytest.raises(ValueError, match="unknown needs \\['eyes'\\]"):
        register_metric("x", label="X", better="lower", needs=("eyes",))
    with pytest.raises(ValueError, match="'fid' is registered twice"):
        register_metric("fid", label="FID", better="lower", needs=())(brightness)
    assert get_metric("fid").score is not brightness


def test_a_snapshot_scorer_scores_one_draw_by_names_with_what_it_loaded(project: tuple[Path, list[str]]) -> None:
    """The Inception and the reference loaded once, no detector and no training faces: FID, KID and precision
    score; a metric that needs the detector is refused by name; a draw too small for k is skipped, not fatal."""
    root, overrides = project
    params = project_params(overrides)
    loaded = load_evaluation(params)  # everything evaluate loads, to take the pieces a snapshot scorer would load
    res = Resources(params.eval, backbone=loaded.resources.backbone, reference=loaded.resources.reference)
    images, _ = read_image_folder(root / "samples", params.data.max_pixels)

    values = score_draw(images, res, ["fid", "kid", "precision"])
    everything = score_draws([images], loaded.resources)  # evaluate's call, every metric
    assert values == {name: everything[name]["draws"][0] for name in ("fid", "kid", "precision")}

    with pytest.raises(UserError, match="metric afd needs detector"):
        score_draw(images, res, ["afd"])
    assert score_draw(images[:2], res, ["fid", "precision"]).keys() == {"fid"}  # k=3 needs more than 3 images


def test_a_metric_that_skips_every_draw_has_no_entry_and_one_warning(
    project: tuple[Path, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    def never(draw, resources) -> float:
        raise Skip("this toy never scores")

    register_metric("never", label="Never", better="lower", needs=(FEATURES, REFERENCE))(never)
    _, overrides = project
    try:
        metrics = evaluate.execute(project_params(overrides))
    finally:
        unregister("never")
    assert "never" not in metrics and "fid" in metrics
    warned = [r.getMessage() for r in caplog.records if "never skipped" in r.getMessage()]
    assert warned == ["never skipped: this toy never scores"]


def test_cli_evaluate_prints_a_declared_metric(project: tuple[Path, list[str]], toy_metric: str) -> None:
    _, overrides = project
    sets = [a for o in overrides for a in ("--set", o)]
    result = CliRunner().invoke(app, ["evaluate", *sets])
    assert result.exit_code == 0, result.output
    assert any(line.startswith("brightness") for line in result.output.splitlines())
