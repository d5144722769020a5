"""HTML building blocks of the report pages: escaping, tables, sections, and the self-contained document
(inline CSS, inline SVG, the page's numbers as JSON in a non-executed script element; no JavaScript, no
external resource of any kind).

Text is escaped unless it is an `Html` value: only this package's own builders make those, so any string that
came from data, predictions or a config (a `<script>` in a model's answer) renders as text.
"""

from __future__ import annotations

import html
import json
import math


class Html(str):
    """Markup built by this package; `esc` leaves it as it is."""


def esc(value) -> Html:
    """`value` as HTML: an `Html` unchanged, anything else as escaped text."""
    return value if isinstance(value, Html) else Html(html.escape(str(value), quote=True))


def join(parts) -> Html:
    return Html("".join(esc(p) for p in parts))


def tag(name: str, content="", **attrs) -> Html:
    """`<name attrs>content</name>`; attribute values are escaped, `class_` is written `class`."""
    attr_text = "".join(f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"' for k, v in attrs.items() if v is not None)
    return Html(f"<{name}{attr_text}>{esc(content)}</{name}>")


def table(headers: list, rows: list[list], row_classes: list[str | None] | None = None,
          numeric: set[int] | None = None, class_: str | None = None) -> Html:
    """A table; columns whose index is in `numeric` are right-aligned."""
    numeric = numeric or set()
    head = join(tag("th", h, class_="num" if i in numeric else None) for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        cells = join(tag("td", c, class_="num" if i in numeric else None) for i, c in enumerate(row))
        body.append(tag("tr", cells, class_=(row_classes or [None] * len(rows))[r]))
    return tag("table", join([tag("thead", tag("tr", head)), tag("tbody", join(body))]), class_=class_)


def section(anchor: str, title: str, *parts) -> Html:
    return tag("section", join([tag("h2", title), *parts]), id=anchor)


def note(text) -> Html:
    """A muted line: what is missing and how to get it."""
    return tag("p", text, class_="note")


def details(summary: str, content) -> Html:
    """A collapsed block."""
    return tag("details", join([tag("summary", summary), content]))


def pre(text: str) -> Html:
    return tag("pre", text)


def _finite(node):
    """NaN and infinities (not JSON) as null."""
    if isinstance(node, float):
        return node if math.isfinite(node) else None
    if isinstance(node, dict):
        return {str(k): _finite(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_finite(v) for v in node]
    return node


def script_json(data: dict, element_id: str) -> Html:
    """`data` as JSON inside `<script type="application/json">`, which browsers never execute. `<`, `>` and `&`
    are written as JSON escapes, so no string in the data can close the element."""
    text = json.dumps(_finite(data), sort_keys=True, ensure_ascii=False, allow_nan=False, default=str)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Html(f'<script type="application/json" id="{esc(element_id)}">{text}</script>')


CSS = """
:root { --fg: #1b1f24; --muted: #5b6470; --line: #d5dae0; --good: #1a7f37; --bad: #cf222e; --accent: #0b63c5; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: var(--fg);
       max-width: 1040px; margin: 0 auto; padding: 24px 20px 60px; background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; } h3 { font-size: 16px; margin: 18px 0 6px; }
h2 { font-size: 19px; margin: 34px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.sub { color: var(--muted); margin: 0 0 14px; } .note { color: var(--muted); font-size: 14px; }
nav { font-size: 14px; margin-bottom: 10px; } nav a { margin-right: 12px; color: var(--accent); text-decoration: none; }
.verdict { border: 1px solid var(--line); border-radius: 8px; padding: 6px 18px; background: #f6f8fa; }
.verdict ul { padding-left: 0; list-style: none; }
.verdict li { margin: 8px 0; padding-left: 26px; position: relative; }
.verdict li::before { position: absolute; left: 0; font-weight: 700; }
.verdict li.good::before { content: "\\2713"; color: var(--good); }
.verdict li.bad::before { content: "\\2717"; color: var(--bad); }
.verdict li.neutral::before { content: "\\2013"; color: var(--muted); }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 14px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.flagged td { color: var(--bad); font-weight: 600; } tr.best td { background: #eef7ee; }
.wide { overflow-x: auto; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 8px 20px; }
svg.chart { width: 100%; height: auto; display: block; margin: 4px 0 10px; }
svg.chart text { font: 11px system-ui, sans-serif; fill: var(--fg); }
svg.chart .title { font-size: 13px; font-weight: 600; }
svg.chart .axis { stroke: #8c959f; stroke-width: 1; } svg.chart .grid { stroke: #eaeef2; stroke-width: 1; }
.examples td { max-width: 300px; white-space: pre-wrap; word-break: break-word; font-size: 13px; }
pre { background: #f6f8fa; padding: 10px; overflow-x: auto; font-size: 12.5px; }
details { margin: 8px 0; } summary { cursor: pointer; color: var(--accent); }
a { color: var(--accent); }
"""


def document(title: str, body: Html, data: dict, data_id: str = "sftkit-report-data") -> str:
    """The whole page: one file that needs nothing else."""
    head = join([Html('<meta charset="utf-8">'),
                 Html('<meta name="viewport" content="width=device-width, initial-scale=1">'),
                 # no resource loads from anywhere, not even a favicon request
                 Html('<link rel="icon" href="data:,">'),
                 tag("title", title), Html(f"<style>{CSS}</style>")])
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>{head}</head>\n<body>{body}\n{script_json(data, data_id)}\n'
            "</body>\n</html>\n")
