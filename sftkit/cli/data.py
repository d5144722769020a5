"""`sftkit data fetch|inspect`: get and audit training data (`data curate` is in cli/curate.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from sftkit.cli import root
from sftkit.cli.root import data_app
from sftkit.errors import UserError
from sftkit.paths import check_output


@data_app.command("fetch")
def data_fetch(source: Annotated[str, typer.Argument(help="`bigbench`")],
               tasks: Annotated[list[str], typer.Argument(help="task names, e.g. general_knowledge")]):
    """Fetch BIG-bench tasks once into the cache; use them as `bigbench:TASK` anywhere a data path goes."""
    if source != "bigbench":
        raise UserError(f"unknown source {source!r}: only `bigbench` can be fetched")
    from sftkit.data.bigbench import fetch

    for task, files in fetch(tasks).items():
        n = sum(len(json.loads(Path(f).read_text()).get("examples", [])) for f in files)
        where = Path(files[0]).parent if len(files) == 1 else Path(files[0]).parent.parent
        root.out.print(Text(f"bigbench:{task}  {n} examples  ({len(files)} file(s) under {where})"), soft_wrap=True)


# Path parameters say readable=False: sftkit.paths checks them and its one line says how to fix the path.
@data_app.command("inspect")
def data_inspect(
    data: Annotated[list[str], typer.Argument(help="file(s), directory, bigbench:TASK or hub dataset id")],
    model: Annotated[str, typer.Option(help="model whose tokenizer and chat template render the data")] = "default",
    max_length: Annotated[int, typer.Option(help="token limit per example")] = 1024,
    fmt: Annotated[str, typer.Option("--format", help="auto, messages, sharegpt, alpaca, prompt_completion, bigbench")] = "auto",
    overlong: Annotated[str, typer.Option(help="truncate or drop")] = "truncate",
    train_on: Annotated[str, typer.Option(help="all or last assistant turn(s)")] = "all",
    skip_bad_rows: Annotated[bool, typer.Option("--skip-bad-rows", help="count and skip bad rows instead of stopping")] = False,
    rejects: Annotated[Optional[Path], typer.Option(help="write skipped rows here (JSONL)", readable=False)] = None,
    examples: Annotated[int, typer.Option(help="examples to show")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
):
    """Audit data: rows read and skipped, token statistics, and exactly which tokens are trained."""
    from sftkit.data.dataset import NoUsableRowsError
    from sftkit.data.inspect import inspect_data
    from sftkit.models import load_tokenizer

    if rejects:
        check_output(rejects, "--rejects", "file")
    tokenizer = load_tokenizer(model)
    try:
        result = inspect_data(data if len(data) > 1 else data[0], tokenizer, max_length, fmt,
                              "skip" if skip_bad_rows else "error", overlong, train_on, examples)
    except NoUsableRowsError as exc:  # every row bad: the rejects file is what explains it
        if rejects:
            exc.report.write_rejects(rejects)
            exc.message += f"; the skipped rows are in {rejects}"
        raise
    report = result.pop("_report")
    if rejects:
        report.write_rejects(rejects)
    if as_json:
        for ex in result["examples"]:
            ex.pop("tokens")
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    table = Table(title=f"data inspect ({', '.join(f'{k}: {v}' for k, v in result['formats'].items())})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("rows read", str(result["rows_read"]))
    table.add_row("rows skipped", f"{result['rows_skipped']} {result['skipped_by_reason'] or ''}")
    table.add_row("examples kept", str(result["examples_kept"]))
    table.add_row(f"over max_length {max_length}", f"{result['num_over_max_length']} ({overlong})")
    for key in ("prompt_tokens", "trained_tokens", "total_tokens"):
        s = result[key]
        if s.get("count"):
            table.add_row(key.replace("_", " "), f"mean {s['mean']}  p50 {s['p50']}  p95 {s['p95']}  max {s['max']}  "
                          f"total {s['total']}")
    root.out.print(table)
    for ex in result["examples"]:
        text = Text()
        for piece, trained in ex["tokens"]:
            text.append(piece, style="bold black on green" if trained else "dim")
        root.out.rule(Text(f"{ex['source']}:{ex['line']}  {ex['num_trained_tokens']}/{ex['num_tokens']} tokens trained "
                      "(highlighted)"))
        root.out.print(text)
