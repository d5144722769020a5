"""The comparison page for several runs: a leaderboard (what differs in their configs, best validation loss,
gain over prompting, retention, safety, cost) and their curves overlaid.

`write_comparison(run_dirs, output)` is what `sftkit report RUN1 RUN2 ...` and a sweep's leaderboard call.
"""

from __future__ import annotations

import os
from pathlib import Path

from sftkit.report.charts import PALETTE, Series, line_chart
from sftkit.report.collect import RunData, collect_run
from sftkit.report.figures import estimate_text, megabytes, num, seconds, signed
from sftkit.report.html import Html, document, join, note, section, table, tag
from sftkit.report.training import curve, smoothed
from sftkit.training.trackers import flat_config

COMPARISON_NAME = "comparison.html"
IGNORED_KEYS = ("output_dir",)  # differs between every pair of runs by construction


def config_differences(runs: list[RunData]) -> list[dict[str, object]]:
    """Per run, the config leaves whose value is not the same in every run (`section.key -> value`)."""
    flats = [flat_config(r.config) for r in runs]
    keys = sorted({k for f in flats for k in f} - set(IGNORED_KEYS))
    differing = [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1]
    return [{k: f.get(k) for k in differing} for f in flats]


def _sort_key(run: RunData):
    """Larger gain first, then lower best validation loss; runs without either last."""
    gain = (run.comparison or {}).get("gain_over_prompting") or {}
    loss = run.summary.get("best_val_loss")
    return (gain.get("abs") is None, -(gain.get("abs") or 0.0), loss is None, loss or 0.0, run.name)


def _safety_cell(run: RunData) -> str:
    refusal = ((run.safety or {}).get("metrics") or {}).get("refusal_rate")
    if not refusal:
        return "-"
    if "delta" in refusal:
        return f"{num(refusal['model']['value'])} ({estimate_text(refusal['delta'], sign=True)})"
    return estimate_text(refusal["model"])


def leaderboard(runs: list[RunData], links: dict[str, str]) -> Html:
    diffs = config_differences(runs)
    rows, classes = [], []
    for i, (run, diff) in enumerate(zip(runs, diffs)):
        s, c = run.summary, run.comparison or {}
        gain = c.get("gain_over_prompting")
        name = tag("a", run.name, href=links[str(run.path)]) if str(run.path) in links else run.name
        rows.append([i + 1, name, ", ".join(f"{k}={v}" for k, v in diff.items()) or "(same config)",
                     num(s.get("best_val_loss"), 4), num((c.get("accuracy") or {}).get("tuned", {}).get("value")),
                     estimate_text(gain, sign=True) if gain else "-", num(c.get("retention")),
                     len((c.get("forgetting") or {}).get("flagged") or []) if c.get("forgetting") else "-",
                     _safety_cell(run), seconds(s.get("train_seconds")), megabytes(s.get("peak_memory_mb"))])
        classes.append("best" if i == 0 else None)
    headers = ["#", "run", "config differences", "best val loss", "tuned acc", "gain over prompting [95% CI] n",
               "retention", "tasks dropped", "refusal rate (delta)", "train time", "peak memory"]
    return tag("div", table(headers, rows, row_classes=classes, numeric={0, 3, 4, 5, 6, 7, 8, 9, 10}), class_="wide")


def overlaid_curves(runs: list[RunData]) -> Html:
    color = {r.name: PALETTE[i % len(PALETTE)] for i, r in enumerate(runs)}
    val = line_chart("validation loss", [Series(r.name, curve(r.metrics, "val_loss"), color[r.name], dots=True)
                                         for r in runs], y_label="loss")
    train = line_chart("train loss, smoothed", [Series(r.name, smoothed(curve(r.metrics, "train_loss")),
                                                       color[r.name]) for r in runs], y_label="loss")
    return tag("div", join([val, train]), class_="charts")


def render_comparison(runs: list[RunData], title: str = "sftkit run comparison",
                      links: dict[str, str] | None = None) -> str:
    """The page for `runs` (ranked by gain, then best validation loss). `links`: run path -> href of its report."""
    runs = sorted(runs, key=_sort_key)
    claims = []
    best = runs[0]
    gain = (best.comparison or {}).get("gain_over_prompting")
    if gain and len(runs) > 1:
        second = (runs[1].comparison or {}).get("gain_over_prompting")
        claims.append(f"Ranked first: {best.name}, gain over prompting {estimate_text(gain, sign=True)}"
                      + (f"; next {runs[1].name} at {signed(second['abs'])}. Runs are ranked by the point estimate; "
                         "overlapping intervals mean the order is not established." if second else "."))
    body = [tag("h1", title), tag("p", f"{len(runs)} runs", class_="sub"),
            section("leaderboard", "Leaderboard", join([tag("p", " ".join(claims)) if claims else Html(""),
                                                          leaderboard(runs, links or {})])),
            section("curves", "Curves", overlaid_curves(runs))]
    if not any(r.comparison for r in runs):
        body.insert(2, note("No run has a fine-tune-or-prompt comparison: `sftkit compare RUN` adds one."))
    data = {"runs": [{"run": r.name, "summary": r.summary, "comparison": r.comparison,
                      "safety": (r.safety or {}).get("headline"), "config_differences": d}
                     for r, d in zip(runs, config_differences(runs))]}
    return document(title, join(body), data, "sftkit-comparison-data")


def write_comparison(run_dirs: list[str | Path], output: str | Path | None = None,
                     title: str = "sftkit run comparison") -> Path:
    """Write the comparison page of `run_dirs` (default: comparison.html in their common parent directory) and
    return its path. Each run's name links to its report.html when that exists."""
    paths = [Path(p) for p in run_dirs]
    out = Path(output) if output else Path(os.path.commonpath([p.resolve() for p in paths])) / COMPARISON_NAME
    if out.is_dir():
        out = out / COMPARISON_NAME
    runs = [collect_run(p, with_tokens=False) for p in paths]
    links = {str(p): os.path.relpath(p / "report.html", out.parent).replace(os.sep, "/")
             for p in paths if (p / "report.html").is_file()}
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render_comparison(runs, title, links), encoding="utf-8")
    tmp.replace(out)
    return out
