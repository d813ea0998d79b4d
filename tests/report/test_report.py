"""`animegan report`: one self-contained HTML file and a Markdown twin, built from real DVC experiments."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.runs.report import build_report, curve_name, newest_of_each_sequence, read_tsv_curve, sparkline
from stages.cli import app

PROJECT_PARAMS = str(Path(__file__).parents[2] / "params.yaml")


@pytest.fixture(scope="module")
def report(exp_repo: Path):
    return build_report(exp_repo, ["main", "better", "otherdata"], metrics_dir="metrics", plots_dir="plots")


def test_html_is_self_contained_with_every_part(report) -> None:
    html = report.html
    assert "<script" not in html and "<link" not in html
    assert not re.search(r'src="(?!data:)', html)  # every image is inlined
    assert html.count('src="data:image/png;base64,') == 3  # the newest grid of each run, not the older one
    assert "grid_epoch_2.png" in html and "grid_epoch_1.png" not in html
    assert "Welch&#x27;s two-sided t-test" in html and "provenance differs: not comparable" in html
    for title in ("FID per draw", "KID per draw", "AFD per draw", ">losses<", ">train/images_per_s<"):
        assert title in html
    assert html.count("<svg") == 3 + 3 * 2  # spread charts + (losses, images/s) per run
    assert "100 ± 0.58" in html and "80 ± 0.58" in html


def test_markdown_twin_has_the_tables_and_curves(report) -> None:
    md = report.markdown
    assert "| main | better | FID | -20 | 1.4e-11 | **better better** |" in md
    assert "> warning: main vs otherdata: provenance dataset_sha256 differs" in md
    assert "| FID | 100 ± 0.58 | 5 | 100, 100.8, 99.4, 100.3, 99.5 | lower |" in md
    assert re.search(r"train/loss_d +█+.*1.02 … 1.4, last 1.02", md)
    assert "base64" not in md and len(md) < 65536  # fits a GitHub PR comment


def test_cli_writes_html_and_markdown(exp_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(exp_repo)
    out = tmp_path / "r" / "report.html"
    result = CliRunner().invoke(app, ["report", "--out", str(out), "--params", PROJECT_PARAMS])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("<!DOCTYPE html>")
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## workspace" in md and "## Comparison" not in md  # one run: no pairwise table


def test_run_trained_but_not_evaluated_says_so(tmp_path: Path) -> None:
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "train.json").write_text(json.dumps({"steps": 10}))
    built = build_report(tmp_path, [], metrics_dir="metrics", plots_dir="plots")
    assert "not evaluated yet" in built.html and "not evaluated yet" in built.markdown


def test_run_with_nothing_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["report", "--params", PROJECT_PARAMS])
    assert result.exit_code == 2
    assert result.output.strip() == "error: workspace: nothing to report: no metrics in metrics/ and no plots in " \
        "plots/ (run `dvc repro` there first)"  # fmt: skip
    assert not (tmp_path / "plots").exists()


def test_curve_and_image_helpers() -> None:
    assert curve_name("plots/train/plots/metrics/train/loss_d.tsv") == "train/loss_d"
    assert curve_name("plots/other/speed.tsv") == "speed"
    assert read_tsv_curve(b"timestamp\tstep\tloss\n1\t0\t2.5\n2\t1\tnan\n3\t2\toops\n")[0] == (0.0, 2.5)
    assert read_tsv_curve(b"") == []
    paths = ["p/grid_epoch_2.png", "p/grid_epoch_10.png", "p/grid_epoch_9.png", "p/clean_preview.png"]
    assert newest_of_each_sequence(paths) == ["p/clean_preview.png", "p/grid_epoch_10.png"]
    assert sparkline([1, 2, 3]) == "▁▅█" and sparkline([5, 5]) == "▁▁" and len(sparkline(list(range(100)))) == 40


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

CHECK = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]);
  const charts = [...document.querySelectorAll("svg")].map(s => s.getBoundingClientRect().width);
  const pre = document.createElement("pre");
  pre.id = "check";
  pre.textContent = JSON.stringify({images, charts});
  document.body.appendChild(pre);
});
</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_renders_in_headless_chromium_and_images_decode(report, tmp_path: Path) -> None:
    # The probe script goes into a copy: the report itself stays script-free.
    page = tmp_path / "probe.html"
    page.write_text(report.html.replace("</body>", CHECK), encoding="utf-8")
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="check">(.*?)</pre>', done.stdout)
    assert found, f"no probe output; stderr: {done.stderr[-2000:]}"
    probe = json.loads(found.group(1).replace("&quot;", '"'))
    assert len(probe["images"]) == 3
    assert all(ok and w > 0 and h > 0 for ok, w, h in probe["images"]), probe["images"]
    assert len(probe["charts"]) == 9 and all(w > 0 for w in probe["charts"])


def test_cli_out_ending_in_md_writes_both_files_and_a_folder_is_refused(
    exp_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(exp_repo)
    result = CliRunner().invoke(app, ["report", "--out", str(tmp_path / "r.md"), "--params", PROJECT_PARAMS])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert (tmp_path / "r.md").read_text().startswith("# Anime-face GAN report")  # not the HTML over it
    for out, needle in ((tmp_path, "is a folder"), (tmp_path / "r.txt", "end the name in .html or .md")):
        result = CliRunner().invoke(app, ["report", "--out", str(out), "--params", PROJECT_PARAMS])
        assert result.exit_code == 2 and needle in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.md"]


def test_markdown_escapes_run_names_and_params_text_as_the_html_does(tmp_path: Path, shell) -> None:
    evil_branch, evil_url = "<script>alert(1)</script>", "<svg onload=alert(2)>"
    shell(tmp_path, "git", "init", "-q", "-b", "main")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "train.json").write_text(json.dumps({"steps": 10, "note": "<b>x</b>"}))
    (tmp_path / "metrics" / "data.json").write_text(json.dumps({"source": {"url": evil_url}, "kept": 5}))
    shell(tmp_path, "git", "add", "-A")
    shell(tmp_path, "git", "commit", "-q", "-m", "run")
    shell(tmp_path, "git", "branch", evil_branch)
    built = build_report(tmp_path, [evil_branch], metrics_dir="metrics", plots_dir="plots")
    for text in (built.markdown, built.html):
        assert "<script" not in text and "<svg" not in text and "<b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in built.markdown
    assert "&lt;svg onload=alert(2)&gt;" in built.markdown
def test_copies_of_training_faces_are_shown_beside_them(tmp_path: Path) -> None:
    from pipeline.core.image_grid import save_grid
    from pipeline.data.cartoon import cartoon_faces

    faces = cartoon_faces(count=4, size=16, seed=0)
    save_grid(faces, tmp_path / "plots" / "copies.png", ncol=2)  # evaluate's layout: sample, training face
    worst = [
        {"image": 2, "training_index": 7, "distance": 0.01, "copy": True, "feature_distance": 3.2},
        {"image": 0, "training_index": 1, "distance": 0.2, "copy": False, "feature_distance": 9.5},
    ]
    ev = {
        "fid": {"mean": 50.0, "std": 1.0, "draws": [49.0, 51.0]},
        "precision": {"mean": 0.6, "std": 0.01, "draws": [0.59, 0.61]},
        "copied": {"mean": 0.25, "std": 0.0, "draws": [0.25, 0.25]},
        "copies": {"threshold": 0.04, "flagged": [2], "worst": worst, "picture": "plots/copies.png"},
        "provenance": {"copy_calibration": {"method": "calibrated", "threshold": 0.04}},
    }
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "eval.json").write_text(json.dumps(ev))
    built = build_report(tmp_path, [], metrics_dir="metrics", plots_dir="plots")
    summary = "1 submitted images copy a training face (3.jpg): copy distance below 0.04 (calibrated on held-out"
    assert "Copies of training faces" in built.html and summary in built.html
    assert built.html.count('src="data:image/png;base64,') == 1  # the pairs, not again among the sample grids
    assert "each row: the sample, then its nearest training face" in built.html
    assert "| 1 | 3.jpg (image 2) | clean face 7 | 0.01 | copy | 3.2 |" in built.markdown
    assert "| 2 | 1.jpg (image 0) | clean face 1 | 0.2 |  | 9.5 |" in built.markdown
    assert "| Precision | 0.6 ± 0.01 | 2 | 0.59, 0.61 | higher |" in built.markdown
    assert "Precision per draw (higher is better)" in built.html


def test_a_copies_picture_with_nothing_listed_is_not_shown_as_pairs(tmp_path: Path) -> None:
    from pipeline.core.image_grid import save_note

    save_note("no sample within 0.05 of a training face", tmp_path / "plots" / "copies.png")  # what evaluate writes
    ev = {"copies": {"threshold": 0.04, "near": 0.05, "flagged": [], "worst": []}}
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "eval.json").write_text(json.dumps(ev))
    built = build_report(tmp_path, [], metrics_dir="metrics", plots_dir="plots")
    assert "0 submitted images copy a training face: copy distance below 0.04" in built.html
    assert "each row: the sample" not in built.html and 'src="data:image/png' not in built.html
