"""Small, dependency-free SVG charts for the report: line charts (training curves) and strip plots (draw spread).

Usage:
    from pipeline.runs.svg import line_chart, strip_chart
    svg = line_chart("losses", {"loss_d": [(0, 1.4), (1, 1.2)], "loss_g": [(0, 0.7), (1, 0.9)]}, x_label="step")
    svg = strip_chart("FID", [("main", [101.0, 99.5, 100.2]), ("exp-wgan", [80.1, 79.4])], reference=None)

Each returns one self-contained <svg> element (no scripts, no external fonts) to inline in HTML.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
FONT = 'font-family="sans-serif" font-size="11"'
MAX_POINTS = 1500  # per series: enough for a smooth curve, small enough for a PR-sized file


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 2.5 or 5 times a power of ten apart)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / count
    base = 10 ** math.floor(math.log10(raw))
    step = next(base * m for m in (1, 2, 2.5, 5, 10) if base * m >= raw)
    first = math.floor(lo / step) * step
    ticks = [round(first, 12)]
    while ticks[-1] < hi - step * 1e-9 or len(ticks) < 2:
        ticks.append(round(first + step * len(ticks), 12))
    return ticks


def line_chart(
    title: str,
    series: dict[str, Sequence[tuple[float, float]]],
    x_label: str = "step",
    width: int = 560,
    height: int = 260,
) -> str:
    """One chart with a line per series and a legend."""
    series = {name: _thin([p for p in pts if _finite(p)]) for name, pts in series.items()}
    series = {name: pts for name, pts in series.items() if pts}
    left, right, top, bottom = 56, 12, 28, 36
    parts = [_open(width, height, title), _text(width / 2, 16, title, anchor="middle", bold=True)]
    if not series:
        parts.append(_text(width / 2, height / 2, "no data", anchor="middle"))
        return "".join(parts) + "</svg>"
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    xt, yt = nice_ticks(min(xs), max(xs)), nice_ticks(min(ys), max(ys))
    sx = _scale(xt[0], xt[-1], left, width - right)
    sy = _scale(yt[0], yt[-1], height - bottom, top)
    parts += _axes(xt, yt, sx, sy, left, width - right, top, height - bottom)
    parts.append(_text((left + width - right) / 2, height - 4, x_label, anchor="middle"))
    for i, (name, pts) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{coords}"/>')
        ly = top + 4 + 14 * i
        lx = width - right - 150
        parts.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 18}" y2="{ly}" stroke="{color}" stroke-width="2"/>')
        parts.append(_text(lx + 22, ly + 4, name))
    return "".join(parts) + "</svg>"


def strip_chart(
    title: str,
    rows: Sequence[tuple[str, Sequence[float]]],
    reference: tuple[str, float] | None = None,
    width: int = 560,
) -> str:
    """A row per run: each draw as a dot, the mean as a tick and mean ± std as a bar; optional reference line."""
    rows = [(label, [v for v in values if math.isfinite(v)]) for label, values in rows]
    left, right, top, row_h, bottom = 130, 16, 28, 26, 30
    height = top + row_h * max(len(rows), 1) + bottom
    parts = [_open(width, height, title), _text(width / 2, 16, title, anchor="middle", bold=True)]
    values = [v for _, vs in rows for v in vs] + ([reference[1]] if reference else [])
    if not values:
        parts.append(_text(width / 2, height / 2, "no draws", anchor="middle"))
        return "".join(parts) + "</svg>"
    xt = nice_ticks(min(values), max(values))
    sx = _scale(xt[0], xt[-1], left, width - right)
    y_axis = top + row_h * len(rows)
    for t in xt:
        x = sx(t)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{y_axis}" stroke="#e5e5e5"/>')
        parts.append(_text(x, y_axis + 14, _fmt(t), anchor="middle"))
    parts.append(f'<line x1="{left}" y1="{y_axis}" x2="{width - right}" y2="{y_axis}" stroke="#333"/>')
    for i, (label, vs) in enumerate(rows):
        y = top + row_h * i + row_h / 2
        color = PALETTE[i % len(PALETTE)]
        parts.append(_text(left - 8, y + 4, _clip(label, 20), anchor="end"))
        if not vs:
            continue
        mean = sum(vs) / len(vs)
        std = math.sqrt(sum((v - mean) ** 2 for v in vs) / (len(vs) - 1)) if len(vs) > 1 else 0.0
        x0, x1 = sx(mean - std), sx(mean + std)
        parts.append(
            f'<rect x="{x0:.1f}" y="{y - 5:.1f}" width="{max(x1 - x0, 1):.1f}" height="10" '
            f'fill="{color}" fill-opacity="0.18"/>'
        )
        parts.append(
            f'<line x1="{sx(mean):.1f}" y1="{y - 8:.1f}" x2="{sx(mean):.1f}" y2="{y + 8:.1f}" '
            f'stroke="{color}" stroke-width="2"/>'
        )
        for v in vs:
            parts.append(f'<circle cx="{sx(v):.1f}" cy="{y:.1f}" r="3" fill="{color}" fill-opacity="0.7"/>')
    if reference:
        x = sx(reference[1])
        parts.append(
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{y_axis}" stroke="#555" stroke-dasharray="4 3"/>'
        )
        near_right = x > (left + width - right) / 2
        label = f"{reference[0]} {_fmt(reference[1])}"
        parts.append(_text(x - 3 if near_right else x + 3, top - 6, label, anchor="end" if near_right else "start"))
    return "".join(parts) + "</svg>"


def _axes(xt, yt, sx, sy, x_lo, x_hi, y_top, y_base) -> list[str]:  # noqa: ANN001 - internal helper
    out = []
    for t in yt:
        y = sy(t)
        out.append(f'<line x1="{x_lo}" y1="{y:.1f}" x2="{x_hi}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(_text(x_lo - 6, y + 4, _fmt(t), anchor="end"))
    for t in xt:
        out.append(_text(sx(t), y_base + 14, _fmt(t), anchor="middle"))
    out.append(f'<line x1="{x_lo}" y1="{y_base}" x2="{x_hi}" y2="{y_base}" stroke="#333"/>')
    out.append(f'<line x1="{x_lo}" y1="{y_top}" x2="{x_lo}" y2="{y_base}" stroke="#333"/>')
    return out


def _open(width: int, height: int, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
        f'<rect width="{width}" height="{height}" fill="white"/>'
    )


def _text(x: float, y: float, text: str, anchor: str = "start", bold: bool = False) -> str:
    weight = ' font-weight="bold"' if bold else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {FONT}{weight}>{escape(text)}</text>'


def _scale(lo: float, hi: float, out_lo: float, out_hi: float):  # noqa: ANN202 - returns a small lambda
    span = (hi - lo) or 1.0
    return lambda v: out_lo + (v - lo) / span * (out_hi - out_lo)


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _finite(p: tuple[float, float]) -> bool:
    return math.isfinite(p[0]) and math.isfinite(p[1])


def _thin(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) <= MAX_POINTS:
        return points
    step = math.ceil(len(points) / MAX_POINTS)
    return points[::step] + ([points[-1]] if (len(points) - 1) % step else [])
