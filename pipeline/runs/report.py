"""One self-contained HTML report (and a Markdown twin for a PR comment) of one or more runs.

Usage:
    from pipeline.runs.report import build_report, write_report
    report = build_report(".", ["main", "exp-wgan"], metrics_dir="metrics", plots_dir="plots")
    write_report(report, Path("plots/report.html"), Path("plots/report.md"))

Per run (workspace, git revision or DVC experiment, see pipeline.runs.revisions): the FID/KID/AFD table with the
spread over repeated draws, the newest sample grid(s) found under the plots folder, the training curves from
DVCLive's .tsv files (losses together, every other series on its own chart), train/data summaries and the
provenance, and the copy check: each of the submission's closest images beside its nearest training face
(plots/copies.png, written by evaluate) with its distance and whether it counts as a copy. With several runs it
starts with the significance table of pipeline.runs.compare. Images are inlined
as base64 and charts are inline SVG, so the HTML file needs nothing else; the Markdown twin holds the tables,
text sparklines of the curves and no images (a PR comment cannot embed them).
"""

from __future__ import annotations

import base64
import csv
import io
import logging
import math
import re
from dataclasses import dataclass, field
from html import escape
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image, UnidentifiedImageError

from pipeline.core.atomic import atomic_write_text
from pipeline.core.errors import UserError
from pipeline.core.outputs import COPIES_PICTURE_FILE, DATA_METRICS_FILE, EVAL_METRICS_FILE, TRAIN_METRICS_FILE
from pipeline.metrics.scores import all_metrics
from pipeline.runs.compare import (
    TEST_HEADERS,
    Comparison,
    RunMetrics,
    Spread,
    compare_metrics,
    comparison_rows,
    markdown_table,
    reading_note,
    significance_note,
    spreads_of,
    summary_headers,
)
from pipeline.runs.revisions import Run, open_run
from pipeline.runs.svg import line_chart, strip_chart

log = logging.getLogger(__name__)

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
MAX_IMAGES = 6  # per run, after collapsing per-epoch sequences to their newest member
MAX_IMAGE_BYTES = 4 * 1024 * 1024
MIN_DISPLAY_PX = 256
ALPHA = 0.05
SPARKS = "▁▂▃▄▅▆▇█"
BOOKKEEPING_CURVES = {"epoch", "step"}  # logged by DVCLive beside the curves; a straight line says nothing


@dataclass
class Picture:
    path: str
    mime: str
    data: bytes
    size: tuple[int, int]


@dataclass
class RunReport:
    label: str
    commit: str | None
    eval: dict[str, Any] | None
    train: dict[str, Any] | None
    data: dict[str, Any] | None
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    pictures: list[Picture] = field(default_factory=list)
    copies_picture: Picture | None = None

    def spread(self, key: str) -> Spread | None:
        return Spread.from_eval((self.eval or {}).get(key))


@dataclass
class Report:
    runs: list[RunReport]
    comparison: Comparison | None
    html: str
    markdown: str


def build_report(root: str | Path, revs: list[str | None], metrics_dir: str, plots_dir: str) -> Report:
    runs = [collect_run(open_run(root, rev), metrics_dir, plots_dir) for rev in (revs or [None])]
    for run in runs:
        if not (run.eval or run.train or run.data or run.curves or run.pictures):
            raise UserError(f"{run.label}: nothing to report: no metrics in {metrics_dir}/ and no plots in "
                            f"{plots_dir}/ (run `dvc repro` there first)")  # fmt: skip
    evaluated = [RunMetrics(r.label, r.eval, spreads_of(r.eval)) for r in runs if r.eval]
    comparison = compare_metrics(evaluated, ALPHA) if len(evaluated) >= 2 else None
    return Report(runs, comparison, render_html(runs, comparison), render_markdown(runs, comparison))


def report_paths(out: Path) -> tuple[Path, Path]:
    """The HTML report's and its Markdown twin's paths from --out: `r.html` or `r.md` both mean r.html + r.md
    (same folder, same stem), so the two files never land on one path."""
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder: give the report's file name (such as {out / 'report.html'})")
    if out.suffix.lower() not in (".html", ".htm", ".md"):
        raise UserError(f"--out {out}: end the name in .html or .md (both r.html and r.md are written)")
    return out.with_suffix(".html") if out.suffix.lower() == ".md" else out, out.with_suffix(".md")


def write_report(report: Report, html_path: Path, md_path: Path) -> None:
    atomic_write_text(html_path, report.html)
    atomic_write_text(md_path, report.markdown)


def collect_run(run: Run, metrics_dir: str, plots_dir: str) -> RunReport:
    files = run.find(plots_dir)
    report = RunReport(
        label=run.label,
        commit=run.commit,
        eval=_object(run.read_json(f"{metrics_dir}/{EVAL_METRICS_FILE}")),
        train=_object(run.read_json(f"{metrics_dir}/{TRAIN_METRICS_FILE}")),
        data=_object(run.read_json(f"{metrics_dir}/{DATA_METRICS_FILE}")),
    )
    for path in files:
        if path.endswith(".tsv") and PurePosixPath(path).stem not in BOOKKEEPING_CURVES:
            name = curve_name(path)
            points = read_tsv_curve(run.read_bytes(path) or b"")
            if points:
                report.curves[name] = points
    copies = [p for p in files if PurePosixPath(p).name == COPIES_PICTURE_FILE]  # evaluate's pairs
    if copies and copy_rows(report):  # with no pairs listed, evaluate's picture only says so: the summary does too
        report.copies_picture = read_picture(run, copies[0])
    images = [p for p in files if PurePosixPath(p).suffix.lower() in IMAGE_TYPES and p not in copies]
    images = newest_of_each_sequence(images)
    for path in sorted(images, key=picture_order):
        picture = read_picture(run, path)
        if picture is not None and len(report.pictures) < MAX_IMAGES:
            report.pictures.append(picture)
    return report


def curve_name(path: str) -> str:
    """DVCLive writes <dir>/plots/metrics/<name>.tsv, where <name> may hold slashes ("train/loss_d")."""
    parts = PurePosixPath(path).with_suffix("").parts
    if "metrics" in parts:
        return "/".join(parts[len(parts) - parts[::-1].index("metrics") :])
    return parts[-1]


def read_tsv_curve(data: bytes) -> list[tuple[float, float]]:
    """(step, value) pairs from a DVCLive .tsv (columns timestamp, step, <name>); rows that fail to parse skip."""
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8", errors="replace")), delimiter="\t"))
    if not rows:
        return []
    columns = [c for c in rows[0] if c not in ("timestamp", "step")]
    if not columns:
        return []
    points = []
    for i, row in enumerate(rows):
        try:
            points.append((float(row.get("step", i)), float(row[columns[-1]])))
        except (TypeError, ValueError):
            continue
    return points


def newest_of_each_sequence(paths: list[str]) -> list[str]:
    """grid_epoch_1.png .. grid_epoch_12.png -> grid_epoch_12.png (the number compared as a number)."""
    newest: dict[str, tuple[tuple[int, ...], str]] = {}
    for path in paths:
        key = re.sub(r"\d+", "#", path)
        order = tuple(int(n) for n in re.findall(r"\d+", path))
        if key not in newest or order > newest[key][0]:
            newest[key] = (order, path)
    return sorted(path for _, path in newest.values())


def picture_order(path: str) -> tuple[int, str]:
    """Samples first, then the final training grid, per-epoch grids, and real-face previews last."""
    name = PurePosixPath(path).name.lower()
    rank = 0 if "sample" in name else 1 if "final" in name else 3 if "preview" in name else 2
    return rank, path


def read_picture(run: Run, path: str) -> Picture | None:
    data = run.read_bytes(path)
    if data is None or len(data) > MAX_IMAGE_BYTES:
        log.warning("%s: skipping %s (absent or larger than %d bytes)", run.label, path, MAX_IMAGE_BYTES)
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
            size = img.size
    except (UnidentifiedImageError, OSError, SyntaxError):
        log.warning("%s: skipping %s (not a readable image)", run.label, path)
        return None
    return Picture(path, IMAGE_TYPES[PurePosixPath(path).suffix.lower()], data, size)


# ---------- rows shared by both renderings ----------


def metric_rows(run: RunReport) -> list[list[str]]:
    rows = []
    for metric in all_metrics():
        s = run.spread(metric.name)
        if s is None:
            continue
        draws = ", ".join(f"{d:.4g}" for d in s.draws)
        rows.append([metric.label, f"{s.mean:.4g} ± {s.std:.2g}", str(len(s.draws)), draws, metric.better])
    ev = run.eval or {}
    for metric in all_metrics():  # the numbers each metric puts beside its entry (afd_real, afd_rel)
        for key, label in metric.extras:
            if isinstance(ev.get(key), int | float):
                rows.append([label, f"{ev[key]:.4g}", "", "", metric.better])
    return rows


METRIC_HEADERS = ["metric", "mean ± std", "draws", "per draw", "better"]
COPY_HEADERS = ["row", "sample", "training face", "copy distance", "copy", "feature distance"]


def copy_summary(run: RunReport) -> str | None:
    copies = (run.eval or {}).get("copies")
    if not isinstance(copies, dict):
        return None
    flagged = copies.get("flagged") or []
    calibration = ((run.eval or {}).get("provenance") or {}).get("copy_calibration") or {}
    how = "calibrated on held-out clean faces" if calibration.get("method") == "calibrated" else "set in params"
    files = ", ".join(f"{i + 1}.jpg" for i in flagged[:20]) + (" ..." if len(flagged) > 20 else "")
    found = f"{len(flagged)} submitted images copy a training face" + (f" ({files})" if flagged else "")
    return f"{found}: copy distance below {copies.get('threshold', float('nan')):.4g} ({how})."


def copy_rows(run: RunReport) -> list[list[str]]:
    """One row per pair in the copies picture, in its order (closest first)."""
    rows = []
    for n, row in enumerate(((run.eval or {}).get("copies") or {}).get("worst") or [], start=1):
        feature = row.get("feature_distance")
        rows.append([
            str(n), f"{row['image'] + 1}.jpg (image {row['image']})", f"clean face {row['training_index']}",
            f"{row['distance']:.4g}", "copy" if row.get("copy") else "", "" if feature is None else f"{feature:.4g}",
        ])  # fmt: skip
    return rows


def flatten(obj: Any, prefix: str = "") -> list[list[str]]:
    if isinstance(obj, dict):
        return [row for k in sorted(obj) for row in flatten(obj[k], f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(obj, list) and len(obj) > 8:
        return [[prefix, f"[{len(obj)} values]"]]
    if isinstance(obj, float):
        return [[prefix, f"{obj:.6g}"]]
    return [[prefix, str(obj)]]


def chart_groups(curves: dict[str, list[tuple[float, float]]]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """Losses share one chart (same scale, read together); every other series gets its own."""
    groups: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for name in sorted(curves):
        title = "losses" if "loss" in name.lower() else name
        groups.setdefault(title, {})[name] = curves[name]
    return groups


# ---------- HTML ----------

CSS = """
body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}section.run{border-top:2px solid #888;margin-top:2em}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}
figcaption{font-size:small;color:#555}img{max-width:100%;image-rendering:pixelated}
.charts{display:flex;flex-wrap:wrap;gap:1em}.charts svg{border:1px solid #eee}.note{color:#555;font-size:small}
"""


def render_html(runs: list[RunReport], comparison: Comparison | None) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>Anime-face GAN report</title>',
        f"<style>{CSS}</style></head><body>",
        "<h1>Anime-face GAN report</h1>",
        f"<p>Runs: {escape(', '.join(_run_title(r) for r in runs))}.</p>",
    ]
    if comparison is not None:
        summary, tests = comparison_rows(comparison)
        out += ["<h2>Comparison</h2>", _html_table(summary_headers(), summary)]
        out.append(f'<p class="note">{escape(reading_note())}</p>')
        out.append(f'<p class="note">{escape(significance_note(comparison))}</p>')
        out.append(_html_table(TEST_HEADERS, [[c.replace("**", "") for c in row] for row in tests]))
        out += [f'<p class="note">warning: {escape(w)}</p>' for w in comparison.warnings]
    spread_charts = _spread_charts(runs)
    if spread_charts:
        out += ["<h2>Spread over repeated draws</h2>", '<div class="charts">', *spread_charts, "</div>"]
    for run in runs:
        out.append(_html_run(run))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _spread_charts(runs: list[RunReport]) -> list[str]:
    charts = []
    for metric in all_metrics():
        rows = [(r.label, list(s.draws) or [s.mean]) for r in runs if (s := r.spread(metric.name)) is not None]
        if not rows:
            continue
        reference = None
        if metric.real_value:  # the same measure on real faces, as a line
            key = metric.real_value
            real = [r.eval[key] for r in runs if isinstance((r.eval or {}).get(key), int | float)]
            reference = ("real faces", float(real[0])) if real else None
        charts.append(strip_chart(f"{metric.label} per draw ({metric.better} is better)", rows, reference))
    return charts


def _html_run(run: RunReport) -> str:
    out = [f'<section class="run"><h2>{escape(_run_title(run))}</h2>']
    if run.eval:
        out += ["<h3>Metrics</h3>", _html_table(METRIC_HEADERS, metric_rows(run))]
    else:
        out.append('<p class="note">No eval.json at this revision (not evaluated yet).</p>')
    if run.pictures:
        out.append("<h3>Samples</h3>")
        for pic in run.pictures:
            out.append(_html_figure(pic, f"{pic.path} ({pic.size[0]}×{pic.size[1]})"))
    summary = copy_summary(run)
    if summary:
        out += ["<h3>Copies of training faces</h3>", f"<p>{escape(summary)}</p>"]
        if run.copies_picture is not None:
            out.append(_html_figure(run.copies_picture, "each row: the sample, then its nearest training face"))
        out.append(_html_table(COPY_HEADERS, copy_rows(run)))
    if run.curves:
        out += ["<h3>Training curves</h3>", '<div class="charts">']
        out += [line_chart(title, series) for title, series in chart_groups(run.curves).items()]
        out.append("</div>")
    for title, obj in (("Training", run.train), ("Data", run.data), ("Provenance", (run.eval or {}).get("provenance"))):
        if obj:
            out += [f"<details><summary>{title}</summary>", _html_table(["key", "value"], flatten(obj)), "</details>"]
    out.append("</section>")
    return "\n".join(out)


def _html_figure(pic: Picture, caption: str) -> str:
    b64 = base64.b64encode(pic.data).decode("ascii")
    w, h = pic.size
    zoom = max(1, MIN_DISPLAY_PX // max(w, h))  # small grids upscaled (pixelated), never blurred
    return (
        f'<figure><img src="data:{pic.mime};base64,{b64}" width="{w * zoom}" height="{h * zoom}" '
        f'alt="{escape(pic.path)}"><figcaption>{escape(caption)}</figcaption></figure>'
    )


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ---------- Markdown ----------


def render_markdown(runs: list[RunReport], comparison: Comparison | None) -> str:
    """Markdown viewers render inline HTML: every text that comes from a run (its name, params, metrics, file
    names) is HTML-escaped, as in the HTML report."""
    out = ["# Anime-face GAN report", "", f"Runs: {_md(', '.join(_run_title(r) for r in runs))}.", ""]
    if comparison is not None:
        summary, tests = comparison_rows(comparison)
        out += ["## Comparison", "", _md_table(summary_headers(), summary), "", reading_note(), ""]
        out += [_md(significance_note(comparison)), "", _md_table(TEST_HEADERS, tests), ""]
        out += [f"> warning: {_md(w)}" for w in comparison.warnings]
        out += [""] if comparison.warnings else []
    for run in runs:
        out += [f"## {_md(_run_title(run))}", ""]
        if run.eval:
            out += [_md_table(METRIC_HEADERS, metric_rows(run)), ""]
        else:
            out += ["No eval.json at this revision (not evaluated yet).", ""]
        summary = copy_summary(run)
        if summary:
            out += ["### Copies of training faces", "", summary, "", markdown_table(COPY_HEADERS, copy_rows(run)), ""]
            if run.copies_picture is not None:
                out += [f"Each sample beside its nearest training face: `{run.copies_picture.path}` (in the HTML).", ""]
        if run.curves:
            out += ["Training curves (first → last, min … max):", "", "```"]
            width = max(len(n) for n in run.curves)  # in a code block: shown as written, never rendered
            for name, pts in sorted(run.curves.items()):
                ys = [y for _, y in pts]
                out.append(f"{name:<{width}}  {sparkline(ys)}  {min(ys):.4g} … {max(ys):.4g}, last {ys[-1]:.4g}")
            out += ["```", ""]
        if run.pictures:
            out += ["Sample grids (in the HTML report): " + ", ".join(_md(p.path) for p in run.pictures), ""]
        for title, obj in (("Training", run.train), ("Data", run.data)):
            if obj:
                out += [f"<details><summary>{title}</summary>", "", _md_table(["key", "value"], flatten(obj))]
                out += ["", "</details>", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def _md(text: str) -> str:
    return escape(text, quote=False)


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    return markdown_table(headers, [[_md(cell) for cell in row] for row in rows])


def sparkline(values: list[float], width: int = 40) -> str:
    if not values:
        return ""
    if len(values) > width:
        # Mean of each of `width` equal slices: the trend without single-step spikes.
        edges = [round(i * len(values) / width) for i in range(width + 1)]
        values = [sum(values[a:b]) / (b - a) for a, b in zip(edges, edges[1:], strict=False) if b > a]
    lo, hi = min(values), max(values)
    span = hi - lo
    if span == 0 or not math.isfinite(span):
        return SPARKS[0] * len(values)
    return "".join(SPARKS[min(int((v - lo) / span * len(SPARKS)), len(SPARKS) - 1)] for v in values)


def _run_title(run: RunReport) -> str:
    return run.label if run.commit is None or run.commit.startswith(run.label) else f"{run.label} ({run.commit[:8]})"


def _object(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None
