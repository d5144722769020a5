"""`sftkit sweep`: successive halving over a search space, chosen on validation, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sftkit.cli.root import app, console


# The path parameter says readable=False: sftkit.paths checks it and its one line says how to fix the path.
@app.command("sweep")
def sweep_cmd(
    config: Annotated[Path, typer.Argument(help="SWEEP.yaml (base, search, budget, objective; see "
                                           "examples/sweep.yaml), or with --auto a plain `sftkit train` config",
                                           readable=False)],
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="override, e.g. --set trials=4 or "
                         "--set base.train.micro_batch_size=4")] = None,
    auto: Annotated[bool, typer.Option("--auto", help="add the built-in search space for the base's method")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="no leaderboard; only sweep.json")] = False,
):
    """Find the settings that win: trials as run directories, the best continue rung by rung (successive
    halving on validation), the test split scored once for the winner and the base. Run the same command
    again to continue an interrupted sweep."""
    from sftkit.sweep.config import load_sweep
    from sftkit.sweep.runner import run_sweep

    plan = load_sweep(str(config), list(overrides or []), auto=auto)  # every problem before any model loads
    run_sweep(plan, quiet=quiet, console=console)
