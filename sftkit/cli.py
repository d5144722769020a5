"""The `sftkit` command line: one sub-command per verb; the work lives in the library modules."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sftkit.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Supervised fine-tuning of open LLMs, with evidence.")
data_app = typer.Typer(no_args_is_help=True, help="Read, audit, fetch and curate training data.")
model_app = typer.Typer(no_args_is_help=True, help="Models: where the default lives.")
config_app = typer.Typer(no_args_is_help=True, help="Configuration files.")
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
app.add_typer(config_app, name="config")
console = Console(stderr=True)
out = Console()


@model_app.command("path")
def model_path(name: Annotated[str, typer.Argument(help="`default` or a model name")] = "default"):
    """Print the local directory of a model's HF checkpoint (converting the default once)."""
    from sftkit.models import resolve_model_path

    print(resolve_model_path(name))


@config_app.command("example")
def config_example(kind: Annotated[str, typer.Argument(help="sft or dpo")] = "sft"):
    """Print a documented starting config with every default."""
    from sftkit import config

    if kind == "dpo":
        from sftkit.recipes.dpo import DPOConfig

        print(config.example_yaml(DPOConfig), end="")
    else:
        print(config.example_yaml(), end="")


@data_app.command("fetch")
def data_fetch(source: Annotated[str, typer.Argument(help="`bigbench`")],
               tasks: Annotated[list[str], typer.Argument(help="task names, e.g. general_knowledge")]):
    """Fetch BIG-bench tasks once into the cache; use them as `bigbench:TASK` anywhere a data path goes."""
    if source != "bigbench":
        raise UserError(f"unknown source {source!r}: only `bigbench` can be fetched")
    from sftkit.data.bigbench import fetch

    for task, files in fetch(tasks).items():
        n = sum(len(json.loads(Path(f).read_text()).get("examples", [])) for f in files)
        out.print(f"bigbench:{task}  {n} examples  ({len(files)} file(s) under {Path(files[0]).parent})")


@data_app.command("inspect")
def data_inspect(
    data: Annotated[list[str], typer.Argument(help="file(s), directory, bigbench:TASK or hub dataset id")],
    model: Annotated[str, typer.Option(help="model whose tokenizer and chat template render the data")] = "default",
    max_length: Annotated[int, typer.Option(help="token limit per example")] = 1024,
    fmt: Annotated[str, typer.Option("--format", help="auto, messages, sharegpt, alpaca, prompt_completion, bigbench")] = "auto",
    overlong: Annotated[str, typer.Option(help="truncate or drop")] = "truncate",
    train_on: Annotated[str, typer.Option(help="all or last assistant turn(s)")] = "all",
    skip_bad_rows: Annotated[bool, typer.Option("--skip-bad-rows", help="count and skip bad rows instead of stopping")] = False,
    rejects: Annotated[Optional[Path], typer.Option(help="write skipped rows here (JSONL)")] = None,
    examples: Annotated[int, typer.Option(help="examples to show")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
):
    """Audit data: rows read and skipped, token statistics, and exactly which tokens are trained."""
    from sftkit.data.inspect import inspect_data
    from sftkit.models import load_tokenizer

    tokenizer = load_tokenizer(model)
    result = inspect_data(data if len(data) > 1 else data[0], tokenizer, max_length, fmt,
                          "skip" if skip_bad_rows else "error", overlong, train_on, examples)
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
    out.print(table)
    for ex in result["examples"]:
        text = Text()
        for piece, trained in ex["tokens"]:
            text.append(piece, style="bold black on green" if trained else "dim")
        out.rule(f"{ex['source']}:{ex['line']}  {ex['num_trained_tokens']}/{ex['num_tokens']} tokens trained "
                 "(highlighted)")
        out.print(text)


@app.command("train")
def train_cmd(
    config: Annotated[Path, typer.Argument(help="YAML config (see `sftkit config example`)")],
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="override, e.g. --set train.learning_rate=1e-4")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue from the latest complete checkpoint")] = False,
    skip_bad_rows: Annotated[bool, typer.Option("--skip-bad-rows", help="same as --set data.on_bad_row=skip")] = False,
):
    """Fine-tune a model (LoRA or full) on instruction data; works under torchrun for several processes."""
    from sftkit.config import load_config

    sets = list(overrides or []) + (["data.on_bad_row=skip"] if skip_bad_rows else [])
    cfg = load_config(str(config), sets)  # every config problem is reported here, before any model loads
    from sftkit.recipes.sft import train

    train(cfg, resume=resume)


def _chat_messages(system: Optional[str], prompt: str) -> list[dict]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]


@app.command("generate")
def generate_cmd(
    model: Annotated[str, typer.Argument(help="run directory, model directory, hub id or `default`")],
    prompt: Annotated[list[str], typer.Option("--prompt", help="user message (repeatable)")],
    system: Annotated[Optional[str], typer.Option(help="system message")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="generation limit")] = 256,
    temperature: Annotated[float, typer.Option(help="0 = greedy")] = 0.0,
):
    """Generate replies with the model's chat template."""
    from sftkit.generation import generate_replies
    from sftkit.models import load_for_inference

    lm, tokenizer, _ = load_for_inference(model)
    replies = generate_replies(lm, tokenizer, [_chat_messages(system, p) for p in prompt], max_new_tokens, temperature)
    for reply in replies:
        print(reply)


@app.command("chat")
def chat_cmd(
    model: Annotated[str, typer.Argument(help="run directory, model directory, hub id or `default`")],
    system: Annotated[Optional[str], typer.Option(help="system message")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="generation limit per reply")] = 256,
    temperature: Annotated[float, typer.Option(help="0 = greedy")] = 0.0,
):
    """Interactive chat with a model or run directory (empty line or Ctrl-D to quit)."""
    from sftkit.generation import generate_replies
    from sftkit.models import load_for_inference

    lm, tokenizer, name = load_for_inference(model)
    console.print(f"chatting with {name}; empty line to quit")
    history = [{"role": "system", "content": system}] if system else []
    while True:
        try:
            text = input("you> ").strip()
        except EOFError:
            break
        if not text:
            break
        history.append({"role": "user", "content": text})
        reply = generate_replies(lm, tokenizer, [history], max_new_tokens, temperature)[0]
        history.append({"role": "assistant", "content": reply})
        print(f"model> {reply}")


def main() -> None:
    """Entry point: user mistakes print one line and exit 2, never a traceback."""
    try:
        app(standalone_mode=False)
    except UserError as exc:
        console.print(Text.assemble(("error: ", "bold red"), exc.format()), soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
