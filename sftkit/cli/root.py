"""The command-line apps and consoles every sub-command module shares."""

from __future__ import annotations

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
