"""The command-line apps and consoles every sub-command module shares."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Supervised fine-tuning of open LLMs, with evidence.")
data_app = typer.Typer(no_args_is_help=True, help="Read, audit, fetch and curate training data.")
model_app = typer.Typer(no_args_is_help=True, help="Models: where the default lives.")
config_app = typer.Typer(no_args_is_help=True, help="Configuration files.")
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
app.add_typer(config_app, name="config")
console = Console(stderr=True)  # progress, notes, errors
out = Console()  # results: tables, JSON

# Arguments and options several sub-commands share, so their names and help stay the same everywhere.
ModelArg = Annotated[str, typer.Argument(help="run directory, model directory, hub id or `default`")]
SystemOpt = Annotated[Optional[str], typer.Option(help="system message")]
TemperatureOpt = Annotated[float, typer.Option(help="0 = greedy")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="continue from the latest complete checkpoint")]
TrainSkipBadRowsOpt = Annotated[bool, typer.Option("--skip-bad-rows", help="same as --set data.on_bad_row=skip")]
