"""Inline SVG charts: line charts with marks, interval (error-bar) charts and histograms.

Small, crisp at any zoom, no JavaScript; a few kB each, where a plotting library would embed megabytes per
page. Coordinates are rounded to 0.1 px and every label goes through `esc`, so the same numbers always give
the same bytes and no text from the data can become markup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sftkit.report.html import Html, esc, join

PALETTE = ("#0b63c5", "#d4590b", "#1a7f37", "#8250df", "#cf222e", "#1b7c83", "#bf8700", "#6e7781")
MUTED = "#6e7781"
MAX_POINTS = 600  # per series; longer curves are thinned evenly (first and last points kept)


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]
    color: str = PALETTE[0]
    dashed: bool = False
    width: float = 1.6
    dots: bool = False  # a marker at every point (sparse series such as validation loss)


@dataclass
class Mark:
    """A reference line: `axis="x"` a vertical line at that step, `axis="y"` a horizontal line at that value."""

    axis: str
    value: float
    label: str = ""
    color: str = MUTED
    dashed: bool = True
    tick: bool = False  # a short tick on the x axis instead of a full line (checkpoints)


@dataclass
class Interval:
    label: str
    value: float
    low: float
    high: float
    text: str  # the figures printed right of the row, e.g. "0.812 [0.703, 0.906] n=32"
    color: str = PALETTE[0]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten) covering [low, high]."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9)
    return [round(i * step, 12) for i in range(first, math.floor(high / step + 1e-9) + 1)]


def tick_text(value: float, ticks: list[float]) -> str:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else abs(value) or 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value:,.{decimals}f}"


def _n(x: float) -> str:
    """A coordinate: 0.1 px is finer than any screen, and fixed digits keep the bytes stable."""
    return f"{x:.1f}".rstrip("0").rstrip(".") if math.isfinite(x) else "0"


def _thin(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) <= MAX_POINTS:
        return points
    stride = (len(points) - 1) / (MAX_POINTS - 1)
    return [points[round(i * stride)] for i in range(MAX_POINTS)]


def _svg(width: int, height: int, title: str, body: list[str]) -> Html:
    return Html(f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
                f'style="max-width:{width}px" role="img" aria-label="{esc(title)}">'
                f'<title>{esc(title)}</title><text class="title" x="8" y="16">{esc(title)}</text>'
                + "".join(body) + "</svg>")


def _legend(items: list[tuple[str, str, bool]], x0: float, y: float, width: float) -> tuple[list[str], float]:
    """Legend entries (name, color, dashed) in rows from (x0, y); returns the elements and the height used."""
    out, x, row = [], x0, 0
    for name, color, dashed in items:
        w = 28 + 6.2 * len(name)
        if x + w > width and x > x0:
            x, row = x0, row + 1
        yy = y + 14 * row
        dash = ' stroke-dasharray="4 3"' if dashed else ""
        out.append(f'<line x1="{_n(x)}" y1="{_n(yy - 4)}" x2="{_n(x + 18)}" y2="{_n(yy - 4)}" stroke="{color}" '
                   f'stroke-width="2"{dash}/><text x="{_n(x + 22)}" y="{_n(yy)}">{esc(name)}</text>')
        x += w
    return out, 14 * (row + 1) if items else 0


def line_chart(title: str, series: list[Series], marks: list[Mark] = (), x_label: str = "step",
               y_label: str = "", width: int = 640, height: int = 250) -> Html:
    """Curves over a shared x axis with reference lines; None-free `points` only (callers drop gaps)."""
    series = [s for s in series if s.points]
    xs = [p[0] for s in series for p in s.points] + [m.value for m in marks if m.axis == "x"]
    ys = [p[1] for s in series for p in s.points] + [m.value for m in marks if m.axis == "y"]
    if not xs or not ys:
        xs, ys = [0.0, 1.0], [0.0, 1.0]
    left, right, top, axis_h = 58, 14, 28, 36
    plot_h = height - top - axis_h - 4
    legend, legend_h = _legend([(s.name, s.color, s.dashed) for s in series], left, top + plot_h + axis_h + 10,
                               width - right)
    total_h = top + plot_h + axis_h + legend_h + 4
    plot_w = width - left - right
    y_pad = (max(ys) - min(ys)) * 0.06 or abs(max(ys)) * 0.1 or 1.0
    x_lo, x_hi = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y_lo, y_hi = min(ys) - y_pad, max(ys) + y_pad
    x_ticks, y_ticks = nice_ticks(x_lo, x_hi), nice_ticks(y_lo, y_hi)

    def px(x):
        return left + (x - x_lo) / ((x_hi - x_lo) or 1) * plot_w

    def py(y):
        return top + plot_h - (y - y_lo) / ((y_hi - y_lo) or 1) * plot_h

    body = []
    for t in y_ticks:
        body.append(f'<line class="grid" x1="{left}" y1="{_n(py(t))}" x2="{width - right}" y2="{_n(py(t))}"/>'
                    f'<text x="{left - 6}" y="{_n(py(t) + 4)}" text-anchor="end">{tick_text(t, y_ticks)}</text>')
    for t in x_ticks:
        body.append(f'<text x="{_n(px(t))}" y="{_n(top + plot_h + 15)}" text-anchor="middle">'
                    f'{tick_text(t, x_ticks)}</text>')
    body.append(f'<line class="axis" x1="{left}" y1="{_n(top + plot_h)}" x2="{width - right}" y2="{_n(top + plot_h)}"/>'
                f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{_n(top + plot_h)}"/>')
    body.append(f'<text x="{_n(left + plot_w / 2)}" y="{_n(top + plot_h + 30)}" text-anchor="middle">'
                f'{esc(x_label)}</text>')
    if y_label:
        body.append(f'<text x="12" y="{_n(top + plot_h / 2)}" text-anchor="middle" '
                    f'transform="rotate(-90 12 {_n(top + plot_h / 2)})">{esc(y_label)}</text>')
    labelled = 0
    for m in marks:
        dash = ' stroke-dasharray="3 3"' if m.dashed else ""
        if m.axis == "x" and m.tick:
            x = _n(px(m.value))
            body.append(f'<path d="M{x},{_n(top + plot_h)} l-3.5,6 h7 z" fill="{m.color}"><title>{esc(m.label)}'
                        f'</title></path>')
        elif m.axis == "x":
            x = _n(px(m.value))
            # labels stacked down the top of the plot, so marks at nearby steps stay readable
            right_half = px(m.value) > left + plot_w / 2
            body.append(f'<line x1="{x}" y1="{top}" x2="{x}" y2="{_n(top + plot_h)}" stroke="{m.color}"{dash}/>'
                        f'<text x="{_n(px(m.value) + (-3 if right_half else 3))}" y="{_n(top + 11 + 12 * labelled)}" '
                        f'text-anchor="{"end" if right_half else "start"}" fill="{m.color}">{esc(m.label)}</text>')
            labelled += 1
        else:
            y = _n(py(m.value))
            body.append(f'<line x1="{left}" y1="{y}" x2="{width - right}" y2="{y}" stroke="{m.color}"{dash}/>'
                        f'<text x="{left + 4}" y="{_n(py(m.value) - 4)}" fill="{m.color}">{esc(m.label)}</text>')
    for s in series:
        pts = _thin(s.points)
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        path = " ".join(f"{_n(px(x))},{_n(py(y))}" for x, y in pts)
        body.append(f'<polyline fill="none" stroke="{s.color}" stroke-width="{s.width}"{dash} points="{path}"/>')
        if s.dots or len(pts) == 1:
            body.append(join(Html(f'<circle cx="{_n(px(x))}" cy="{_n(py(y))}" r="2.6" fill="{s.color}"/>')
                             for x, y in pts))
    return _svg(width, total_h, title, body + legend)


def interval_chart(title: str, rows: list[Interval], zero_line: bool = False,
                   domain: tuple[float, float] | None = None, width: int = 720) -> Html:
    """One row per estimate: a dot at the value and a bar over its 95% interval; `zero_line` marks 0 (for
    differences: a bar entirely right of it is a significant rise)."""
    label_w, text_w, row_h, top = 250, 200, 24, 30
    height = top + row_h * len(rows) + 30
    values = [v for r in rows for v in (r.low, r.high, r.value)] + ([0.0] if zero_line else [])
    lo, hi = domain or (min(values, default=0.0), max(values, default=1.0))
    ticks = nice_ticks(lo, hi)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    plot_w = width - label_w - text_w

    def px(x):
        return label_w + (x - lo) / ((hi - lo) or 1) * plot_w

    body = []
    axis_y = top + row_h * len(rows) + 4
    for t in ticks:
        body.append(f'<line class="grid" x1="{_n(px(t))}" y1="{top - 6}" x2="{_n(px(t))}" y2="{_n(axis_y)}"/>'
                    f'<text x="{_n(px(t))}" y="{_n(axis_y + 14)}" text-anchor="middle">{tick_text(t, ticks)}</text>')
    body.append(f'<line class="axis" x1="{label_w}" y1="{_n(axis_y)}" x2="{_n(label_w + plot_w)}" y2="{_n(axis_y)}"/>')
    if zero_line:
        body.append(f'<line x1="{_n(px(0))}" y1="{top - 6}" x2="{_n(px(0))}" y2="{_n(axis_y)}" stroke="#1b1f24" '
                    f'stroke-dasharray="3 3"/>')
    for i, r in enumerate(rows):
        y = top + row_h * i + row_h / 2
        label = r.label if len(r.label) <= 38 else r.label[:37] + "\u2026"
        body.append(f'<g><title>{esc(r.label)}: {esc(r.text)}</title>'
                    f'<text x="{label_w - 8}" y="{_n(y + 4)}" text-anchor="end">{esc(label)}</text>'
                    f'<line x1="{_n(px(r.low))}" y1="{_n(y)}" x2="{_n(px(r.high))}" y2="{_n(y)}" stroke="{r.color}" '
                    f'stroke-width="3" stroke-linecap="round" opacity="0.55"/>'
                    f'<circle cx="{_n(px(r.value))}" cy="{_n(y)}" r="4.5" fill="{r.color}"/>'
                    f'<text x="{_n(label_w + plot_w + 10)}" y="{_n(y + 4)}">{esc(r.text)}</text></g>')
    return _svg(width, height, title, body)


def histogram(title: str, values: list[float], x_label: str, marks: list[Mark] = (), max_bins: int = 40,
              width: int = 640, height: int = 230) -> Html:
    """Counts of `values` in equal-width bins (numpy's `auto` rule, at most `max_bins`)."""
    import numpy as np

    data = np.asarray(values, dtype=np.float64)
    edges = np.histogram_bin_edges(data, bins="auto") if data.size else np.array([0.0, 1.0])
    if len(edges) - 1 > max_bins:
        edges = np.linspace(edges[0], edges[-1], max_bins + 1)
    counts, edges = np.histogram(data, bins=edges)
    left, right, top, bottom = 52, 14, 28, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    x_lo = float(min(edges[0], *(m.value for m in marks))) if marks else float(edges[0])
    x_hi = float(max(edges[-1], *(m.value for m in marks))) if marks else float(edges[-1])
    y_max = max(int(counts.max()) if counts.size else 1, 1)
    y_ticks = nice_ticks(0, y_max, 4)
    y_hi = max(y_ticks[-1], y_max)

    def px(x):
        return left + (x - x_lo) / ((x_hi - x_lo) or 1) * plot_w

    def py(y):
        return top + plot_h - y / y_hi * plot_h

    body = []
    for t in y_ticks:
        body.append(f'<line class="grid" x1="{left}" y1="{_n(py(t))}" x2="{width - right}" y2="{_n(py(t))}"/>'
                    f'<text x="{left - 6}" y="{_n(py(t) + 4)}" text-anchor="end">{tick_text(t, y_ticks)}</text>')
    for count, a, b in zip(counts, edges[:-1], edges[1:]):
        if count:
            body.append(f'<rect x="{_n(px(a) + 0.5)}" y="{_n(py(count))}" width="{_n(max(px(b) - px(a) - 1, 0.8))}" '
                        f'height="{_n(py(0) - py(count))}" fill="{PALETTE[0]}" opacity="0.8">'
                        f'<title>{a:.0f}-{b:.0f}: {int(count)}</title></rect>')
    x_ticks = nice_ticks(x_lo, x_hi)
    for t in x_ticks:
        if x_lo <= t <= x_hi:
            body.append(f'<text x="{_n(px(t))}" y="{_n(top + plot_h + 15)}" text-anchor="middle">'
                        f'{tick_text(t, x_ticks)}</text>')
    body.append(f'<line class="axis" x1="{left}" y1="{_n(py(0))}" x2="{width - right}" y2="{_n(py(0))}"/>'
                f'<text x="{_n(left + plot_w / 2)}" y="{_n(height - 6)}" text-anchor="middle">{esc(x_label)}</text>')
    for m in marks:
        x = _n(px(m.value))
        body.append(f'<line x1="{x}" y1="{top}" x2="{x}" y2="{_n(py(0))}" stroke="{m.color}" stroke-dasharray="3 3"/>'
                    f'<text x="{x}" y="{top - 3}" text-anchor="end" fill="{m.color}">{esc(m.label)}</text>')
    return _svg(width, height, title, body)
