"""Rich tables for `eval.json` and `comparison.json`."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ci(summary: dict, digits: int = 3) -> str:
    if summary.get("ci_low") is None:
        return "-"
    return f"[{_fmt(summary['ci_low'], digits)}, {_fmt(summary['ci_high'], digits)}]"


def _digits(metric: str) -> int:
    return 2 if metric == "perplexity" else 3


def print_eval(report: dict, console: Console | None = None) -> None:
    """One row per task and metric: value, 95% CI, n; the headline metric in bold; cached tasks marked."""
    console = console or Console()
    table = Table(title=f"eval: {report['model']}")
    for name, justify in (("task", "left"), ("metric", "left"), ("value", "right"), ("95% CI", "right"),
                          ("n", "right")):
        table.add_column(name, justify=justify)
    for task, metrics in report["tasks"].items():
        info = report.get("task_info", {}).get(task, {})
        label = task + (" (cached)" if info.get("cached") else "")
        for i, (metric, s) in enumerate(metrics.items()):
            style = "bold" if metric == report.get("headline", {}).get(task) else None
            d = _digits(metric)
            table.add_row(label if i == 0 else "", metric, _fmt(s["value"], d), _ci(s, d), str(s["n"]),
                          style=style)
        if info.get("skipped"):
            table.add_row("", "skipped rows", str(sum(info["skipped"].values())), str(info["skipped"]), "")
    console.print(table)


def _print_tool_calls(comparison: dict, labels: dict, console: Console) -> None:
    """Each tool-call rate (docs/tools.md) per model, with its 95% CI."""
    from sftkit.eval.tool_calls import TOOL_CALL_METRICS

    table = Table(title="tool calls (rates with 95% CI)", box=box.SIMPLE_HEAD)
    table.add_column("model")
    for name in TOOL_CALL_METRICS:
        table.add_column(name.replace("_", " "), justify="right")
    for key, metrics in comparison["metrics"].items():
        table.add_row(labels[key], *(f"{_fmt(metrics[m]['value'])} {_ci(metrics[m])}" for m in TOOL_CALL_METRICS),
                      style="bold" if key == "tuned" else None)
    console.print(table)


def _pct(value) -> str:
    return "-" if value is None else f"{value * 100:+.1f}%"


def print_comparison(comparison: dict, console: Console | None = None) -> None:
    """The short summary: prompting baselines vs tuned with CIs, the gain, and the forgetting table."""
    console = console or Console()
    test = comparison["test"]
    table = Table(title=f"fine-tune or prompt? {test['metric']} on {test['n']} test examples")
    for name, justify in (("model", "left"), ("value", "right"), ("95% CI", "right")):
        table.add_column(name, justify=justify)
    labels = {"base_zero_shot": "base, zero-shot", "base_k_shot": f"base, {test['shots']}-shot",
              "tuned": "fine-tuned, zero-shot"}
    for key, summary in comparison["accuracy"].items():
        marker = " (best prompting)" if key == comparison["best_baseline"] else ""
        table.add_row(labels[key] + marker, _fmt(summary["value"]), _ci(summary),
                      style="bold" if key == "tuned" else None)
    gain = comparison["gain_over_prompting"]
    table.add_row("gain over best prompting", f"{gain['abs']:+.3f} ({_pct(gain['rel'])})", _ci(gain),
                  style="green" if gain["ci_low"] > 0 else "red" if gain["ci_high"] < 0 else None)
    console.print(table)
    if test.get("kind") == "tool_call":
        _print_tool_calls(comparison, labels, console)
    forgetting = comparison.get("forgetting")
    if not forgetting:
        return
    notes = []
    if forgetting.get("flagged"):
        notes.append("DROP: the 95% CI of the change excludes zero")
    if any(row["metric"] == "perplexity" for row in forgetting["tasks"].values()):
        notes.append("perplexity rows: the CI is of the log-perplexity change")
    table = Table(title=f"forgetting: average retention {_fmt(forgetting['retention'])} (tuned / base)",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, caption="; ".join(notes) or None)
    for name, justify in (("task", "left"), ("base", "right"), ("tuned", "right"), ("delta", "right"),
                          ("95% CI", "right"), ("retention", "right"), ("", "left")):
        # numbers are never cut; a long task name wraps instead
        table.add_column(name, justify=justify, no_wrap=name != "task", overflow="fold" if name == "task" else None)
    for task, row in forgetting["tasks"].items():
        d = _digits(row["metric"])
        label = task.removeprefix("bigbench:")
        if row["metric"] not in ("acc", "perplexity"):
            label += f" ({row['metric']})"
        if row["metric"] == "perplexity":
            delta, ci = f"{row['delta']:+.2f}", f"[{row['delta_log_ci_low']:+.3f}, {row['delta_log_ci_high']:+.3f}]"
        else:
            delta, ci = f"{row['delta']:+.3f}", f"[{row['delta_ci_low']:+.3f}, {row['delta_ci_high']:+.3f}]"
        table.add_row(label, _fmt(row["base"]["value"], d), _fmt(row["tuned"]["value"], d), delta, ci,
                      _fmt(row["retention"]), "DROP" if row["flagged"] else "",
                      style="red" if row["flagged"] else None)
    console.print(table)
