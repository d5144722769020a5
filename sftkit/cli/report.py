"""`sftkit report`: the run's report page and model cards, or the comparison page of several runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sftkit.cli.root import app


# Path parameters say readable=False: sftkit.report.collect checks them and its one line says how to fix the path.
@app.command("report")
def report_cmd(
    runs: Annotated[list[Path], typer.Argument(help="a run directory (-> RUN/report.html), several, or a "
                                                    "directory of runs (-> comparison.html)", readable=False)],
    output: Annotated[Optional[Path], typer.Option(help="where to write the page (default: RUN/report.html, or "
                                                        "comparison.html in the runs' common parent)",
                                                   readable=False)] = None,
    screenshot: Annotated[Optional[Path], typer.Option(help="also write a PNG of the page's top (needs Debian's "
                                                            "chromium)", readable=False)] = None,
    no_model_cards: Annotated[bool, typer.Option("--no-model-cards", help="do not rewrite README.md in adapter/, "
                                                 "merged/ and export/*/")] = False,
):
    """Write a self-contained HTML report (verdict, curves, gain with intervals, forgetting, safety, data, cost)
    and the model cards; with several runs, a leaderboard comparing them."""
    from sftkit.api import report

    result = report(runs, output, screenshot=screenshot, model_cards=not no_model_cards)
    for path in result.passed_over:
        print(f"passed over: {path} (a file, not a run directory)")
    for card in result.model_cards:
        print(f"model card: {card}")
    if result.screenshot:
        print(f"screenshot: {result.screenshot}")
    print(f"{'report' if result.kind == 'run' else 'comparison'}: {result.path}")
