"""The run report, RUN/report.html: verdict, training, fine-tune or prompt, forgetting, safety and red-team,
data, examples, cost, exports, config. The page depends only on the run directory's files (no clock, no
absolute paths of its own), so writing it twice gives the same bytes."""

from __future__ import annotations

from pathlib import Path

from sftkit.report.collect import RunData, collect_run
from sftkit.report.cost import config_section, cost_section, exports_section
from sftkit.report.data import data_section
from sftkit.report.evidence import examples_section, forgetting_section, prompting_section
from sftkit.report.html import Html, document, join, note, section, tag
from sftkit.report.safety import redteam_part, safety_part
from sftkit.report.training import training_section
from sftkit.report.verdict import claims

REPORT_NAME = "report.html"
MAX_EMBEDDED_ROWS = 5000  # metrics rows embedded as JSON; a longer log is thinned evenly


def verdict_section(run: RunData) -> Html:
    items = join(tag("li", c.text, class_=c.tone) for c in claims(run))
    return tag("section", join([tag("h2", "Verdict"), tag("ul", items)]), id="verdict", class_="verdict")


def safety_section(run: RunData) -> Html:
    parts = [tag("h3", "safety: refusals, over-refusals, HHH"),
             safety_part(run.safety) if run.safety else note(
                 "Not measured: `sftkit safety RUN --against BASE`, or train with eval.safety: true.")]
    parts += [tag("h3", "red-team: attack success"),
              redteam_part(run.redteam) if run.redteam else note("Not measured: `sftkit redteam RUN --against BASE`.")]
    return section("safety", "Safety and red-team", join(parts))


def header(run: RunData) -> Html:
    s, c = run.summary, run.config
    base = s.get("base_model") or (c.get("model") or {}).get("name")
    method = s.get("method") or (c.get("train") or {}).get("method")
    data = (c.get("data") or {}).get("train_path")
    title = f"sftkit {run.kind} report: {run.name}"
    links = join(tag("a", text, href=f"#{anchor}") for anchor, text in (
        ("verdict", "verdict"), ("training", "training"), ("prompting", "fine-tune or prompt"),
        ("forgetting", "forgetting"), ("safety", "safety"), ("data", "data"), ("examples", "examples"),
        ("cost", "cost"), ("config", "config")))
    return join([tag("h1", title), tag("p", f"base model {base}; method {method}; training data {data}", class_="sub"),
                 tag("nav", links)])


def page_data(run: RunData) -> dict:
    """The numbers the page shows, for reuse by scripts: the run's own JSON files as read, plus the curves."""
    stride = max(1, -(-len(run.metrics) // MAX_EMBEDDED_ROWS))
    return {"run": run.name, "kind": run.kind, "summary": run.summary, "comparison": run.comparison,
            "safety": run.safety, "redteam": run.redteam, "exports": run.exports,
            "metrics": run.metrics[::stride], "tokens": run.tokens,
            "verdict": [{"topic": c.topic, "text": c.text, "tone": c.tone} for c in claims(run)]}


def render_run(run: RunData) -> str:
    body = [header(run), verdict_section(run), training_section(run)]
    if run.kind == "sft":
        body += [prompting_section(run), forgetting_section(run)]
    body += [safety_section(run), data_section(run)]
    if run.kind == "sft":
        body.append(examples_section(run))
    body += [cost_section(run), exports_section(run), config_section(run)]
    return document(f"sftkit report: {run.name}", join(body), page_data(run))


def write_report(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write the run's report (default RUN/report.html) and return its path."""
    run = collect_run(run_dir)
    path = Path(output) if output else Path(run_dir) / REPORT_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_run(run), encoding="utf-8")
    tmp.replace(path)
    return path
