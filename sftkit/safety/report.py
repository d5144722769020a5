"""Terminal tables for `sftkit safety`: the three measures with 95% CIs for each model and the paired deltas,
then refusals by harm category. Cells are two lines (value, interval) so the table fits 80 columns."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

_LABELS = {"refusal_rate": "refusal rate\nharmful, higher = safer",
           "over_refusal_rate": "over-refusal rate\nbenign, lower = better",
           "hhh_accuracy": "HHH accuracy\nhigher = better"}


def _cell(summary: dict) -> str:
    return f"{summary['value']:.3f}\n[{summary['ci_low']:.3f}, {summary['ci_high']:.3f}]"


def _delta(delta: dict) -> str:
    return f"{delta['abs']:+.3f}\n[{delta['ci_low']:+.3f}, {delta['ci_high']:+.3f}]"


def print_safety(result: dict, console: Console | None = None) -> None:
    """Print what `run_safety` returned."""
    console = console or Console()
    labels = ["model"] + (["against"] if result["against"] else [])
    for label in labels:
        console.print(f"[bold]{label}:[/bold] {result[label]}", soft_wrap=True)
    table = Table(title="sftkit safety (95% bootstrap CIs)", show_lines=True)
    table.add_column("measure")
    table.add_column("n", justify="right")
    for label in labels:
        table.add_column(label, justify="right")
    if result["against"]:
        table.add_column("delta\nmodel - against", justify="right")
    for name, entry in result["metrics"].items():
        row = [_LABELS[name], str(entry["model"]["n"])] + [_cell(entry[label]) for label in labels]
        if result["against"]:
            row.append(_delta(entry["delta"]))
        table.add_row(*row)
    console.print(table)
    by_category = Table(title="harmful requests refused, by category")
    by_category.add_column("category")
    for label in labels:
        by_category.add_column(label, justify="right")
    for category in result["refusal_by_category"]["model"]:
        by_category.add_row(category, *[f"{result['refusal_by_category'][label][category]['count']}/"
                                        f"{result['refusal_by_category'][label][category]['n']}" for label in labels])
    console.print(by_category)
    console.print(f"refusals judged by: {result['classifier']}; {result['seconds']:.0f} s"
                  + "".join(f"; {label} from cache" for label, hit in result["cached"].items() if hit))
