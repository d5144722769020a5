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
        where = Path(files[0]).parent if len(files) == 1 else Path(files[0]).parent.parent
        out.print(Text(f"bigbench:{task}  {n} examples  ({len(files)} file(s) under {where})"), soft_wrap=True)


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
        out.rule(Text(f"{ex['source']}:{ex['line']}  {ex['num_trained_tokens']}/{ex['num_tokens']} tokens trained "
                      "(highlighted)"))
        out.print(text)


@data_app.command("curate")
def data_curate(
    inputs: Annotated[list[str], typer.Argument(help="file(s), directory, bigbench:TASK or hub dataset id")],
    output: Annotated[Path, typer.Option("-o", "--output", help="curated JSONL; OUT.rejects.jsonl goes beside it")],
    target: Annotated[Optional[int], typer.Option(help="keep at most N rows, ranked by score with diversity")] = None,
    decontaminate: Annotated[Optional[list[str]], typer.Option(help="evaluation set to decontaminate against (repeat, or a comma-separated list)")] = None,
    report: Annotated[Optional[Path], typer.Option(help="report JSON (default OUT.report.json)")] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML file whose `curate:` section configures the stages")] = None,
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="override inside curate:, e.g. --set near.threshold=0.7")] = None,
    model: Annotated[Optional[str], typer.Option(help="tokenizer for token lengths (and IFD model)")] = None,
    max_length: Annotated[Optional[int], typer.Option(help="target training length in tokens")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="auto, messages, sharegpt, alpaca, prompt_completion, bigbench")] = None,
    pii: Annotated[Optional[str], typer.Option(help="rows with PII: drop, mask or keep")] = None,
    score: Annotated[Optional[str], typer.Option(help="ranking score for --target: heuristic or ifd")] = None,
    semantic: Annotated[Optional[bool], typer.Option("--semantic/--no-semantic", help="semantic dedup (embed extra)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON summary instead of tables")] = False,
):
    """Curate SFT data: dedup, quality filters, decontamination, PII, selection; every dropped row goes to the
    rejects file with its reasons."""
    from sftkit.data.curate.command import build_config, run_curate

    cfg = build_config(str(config) if config else None, overrides or [], decontaminate or [], target=target,
                       model=model, max_length=max_length, fmt=fmt, pii=pii, score=score, semantic=semantic)
    run_curate(inputs, str(output), cfg, str(report) if report else None, out, as_json)


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


@app.command("dpo")
def dpo_cmd(
    config: Annotated[Path, typer.Argument(help="YAML config (see `sftkit config example dpo`)")],
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="override, e.g. --set dpo.beta=0.2")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue from the latest complete checkpoint")] = False,
    skip_bad_rows: Annotated[bool, typer.Option("--skip-bad-rows", help="same as --set data.on_bad_row=skip")] = False,
):
    """Align a model (or an SFT run) to preference pairs with DPO or IPO; works under torchrun."""
    from sftkit.config import load_config
    from sftkit.recipes.dpo_config import DPOConfig

    sets = list(overrides or []) + (["data.on_bad_row=skip"] if skip_bad_rows else [])
    cfg = load_config(str(config), sets, model_cls=DPOConfig)  # every problem reported before any model loads
    from sftkit.recipes.dpo import train_dpo

    train_dpo(cfg, resume=resume)


@app.command("estimate")
def estimate_cmd(
    config: Annotated[Path, typer.Argument(help="YAML config (the one `sftkit train` takes)")],
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="override, e.g. --set train.method=full")] = None,
    price: Annotated[Optional[list[str]], typer.Option("--price", help="DEVICE=USD per hour (H100, A100, L4, cpu), repeatable")] = None,
    mfu: Annotated[float, typer.Option(help="assumed GPU utilisation: model FLOPs / dense bf16 peak")] = 0.35,
    no_measure: Annotated[bool, typer.Option("--no-measure", help="skip timing one layer on this CPU")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
):
    """Before a run: parameters, tokens, FLOPs, memory, and time and cost on H100, A100, L4 and this CPU."""
    from sftkit.config import load_config
    from sftkit.estimate import estimate_run, parse_prices, print_estimate

    cfg = load_config(str(config), list(overrides or []))
    result = estimate_run(cfg, prices=parse_prices(price), gpu_mfu=mfu, measure=not no_measure)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print_estimate(result, out)


def _chat_messages(system: Optional[str], prompt: str) -> list[dict]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]


_GUARD_BLOCKLIST = typer.Option("--guard-blocklist", help="guardrail: file of regular expressions (one per line) that "
                                "block a request or reply; `default` = the shipped list (repeatable; off by default)")
_GUARD_CLASSIFIER = typer.Option("--guard-classifier", help="guardrail: package.module:function taking a text and "
                                 "returning True or a score >= 0.5 to block it (off by default)")


@app.command("generate")
def generate_cmd(
    model: Annotated[str, typer.Argument(help="run directory, model directory, hub id or `default`")],
    prompt: Annotated[list[str], typer.Option("--prompt", help="user message (repeatable)")],
    system: Annotated[Optional[str], typer.Option(help="system message")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="generation limit")] = 256,
    temperature: Annotated[float, typer.Option(help="0 = greedy")] = 0.0,
    guard_blocklist: Annotated[Optional[list[str]], _GUARD_BLOCKLIST] = None,
    guard_classifier: Annotated[Optional[str], _GUARD_CLASSIFIER] = None,
):
    """Generate replies with the model's chat template."""
    from sftkit.generation import generate_replies
    from sftkit.models import load_for_inference
    from sftkit.safety.guardrails import Guardrail

    guard = Guardrail.from_options(guard_blocklist, guard_classifier)
    lm, tokenizer, _ = load_for_inference(model)
    replies = generate_replies(lm, tokenizer, [_chat_messages(system, p) for p in prompt], max_new_tokens, temperature,
                               guard=guard)
    for reply in replies:
        print(reply)


@app.command("chat")
def chat_cmd(
    model: Annotated[str, typer.Argument(help="run directory, model directory, hub id or `default`")],
    system: Annotated[Optional[str], typer.Option(help="system message")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="generation limit per reply")] = 256,
    temperature: Annotated[float, typer.Option(help="0 = greedy")] = 0.0,
    guard_blocklist: Annotated[Optional[list[str]], _GUARD_BLOCKLIST] = None,
    guard_classifier: Annotated[Optional[str], _GUARD_CLASSIFIER] = None,
):
    """Interactive chat with a model or run directory (empty line or Ctrl-D to quit)."""
    from sftkit.generation import generate_replies
    from sftkit.models import load_for_inference
    from sftkit.safety.guardrails import Guardrail

    guard = Guardrail.from_options(guard_blocklist, guard_classifier)
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
        reply = generate_replies(lm, tokenizer, [history], max_new_tokens, temperature, guard=guard)[0]
        history.append({"role": "assistant", "content": reply})
        print(f"model> {reply}")


def _default_eval_dir(model: str) -> Path:
    from sftkit.models import is_run_dir

    if is_run_dir(model):
        return Path(model) / "eval"
    return Path("eval_results") / (Path(model).name if Path(model).exists() else model.replace("/", "--"))


@app.command("eval")
def eval_cmd(
    model: Annotated[str, typer.Option(help="`default`, a model directory, a hub id, or a run directory")] = "default",
    task: Annotated[Optional[list[str]], typer.Option("--task", help="data file (generation), bigbench:TASK, "
                    "lm-eval-style multiple-choice JSONL, perplexity:fables or perplexity:FILE (repeatable)")] = None,
    suite: Annotated[bool, typer.Option("--suite", help="add the default forgetting suite")] = False,
    output: Annotated[Optional[Path], typer.Option(help="directory for eval.json and predictions.jsonl")] = None,
    max_examples: Annotated[Optional[int], typer.Option(help="seeded subsample per task (suite default: 50)")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="generation limit")] = 32,
    metric: Annotated[str, typer.Option(help="headline generation metric: exact_match, normalized_exact_match, "
                      "contains, token_f1")] = "normalized_exact_match",
    extract: Annotated[Optional[str], typer.Option(help="answer extraction: first_line or regex:PATTERN")] = None,
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16")] = "float32",
    batch_size: Annotated[int, typer.Option(help="prompts per generation batch")] = 16,
    scoring_batch_size: Annotated[int, typer.Option(help="questions or documents per scoring pass")] = 8,
    seed: Annotated[int, typer.Option(help="subsampling seed")] = 1234,
    num_threads: Annotated[Optional[int], typer.Option(help="CPU threads for torch (default: all cores)")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="recompute even if cached")] = False,
    skip_bad_rows: Annotated[bool, typer.Option("--skip-bad-rows", help="count and skip bad rows")] = False,
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help="run model code")] = False,
):
    """Evaluate a base model or a run on tasks: metrics with n and 95% bootstrap CIs, per-example predictions."""
    from sftkit.eval.evaluator import EvalSettings, evaluate
    from sftkit.eval.report import print_eval
    from sftkit.eval.suite import DEFAULT_MAX_EXAMPLES, load_suite
    from sftkit.eval.tasks import load_task

    if not task and not suite:
        raise UserError("nothing to evaluate: pass --task TASK (repeatable) and/or --suite")
    settings = EvalSettings(max_new_tokens, metric, extract, dtype, batch_size, scoring_batch_size, num_threads)
    tasks = [load_task(t, max_examples, seed, "skip" if skip_bad_rows else "error") for t in task or []]
    if suite:
        tasks += load_suite(None, max_examples or DEFAULT_MAX_EXAMPLES)
    output = output or _default_eval_dir(model)
    report = evaluate(model, tasks, output, settings, not no_cache, trust_remote_code,
                      {"max_examples": max_examples, "seed": seed})
    print_eval(report, out)
    console.print(f"wrote {output / 'eval.json'} and {output / 'predictions.jsonl'}")


@app.command("compare")
def compare_cmd(
    run_dir: Annotated[Path, typer.Argument(help="output directory of `sftkit train`")],
    test: Annotated[Optional[Path], typer.Option(help="test data (default: RUN/data/test.jsonl)")] = None,
    shots: Annotated[Optional[int], typer.Option(help="examples in the prompting baseline (default 5)")] = None,
    output: Annotated[Optional[Path], typer.Option(help="directory for comparison.json (default RUN/compare)")] = None,
    suite: Annotated[Optional[list[str]], typer.Option("--suite", help="forgetting suite task (repeatable; "
                     "`default` = the default suite)")] = None,
    no_suite: Annotated[bool, typer.Option("--no-suite", help="skip the forgetting suite")] = False,
    suite_max_examples: Annotated[Optional[int], typer.Option(help="examples per suite task")] = None,
    max_new_tokens: Annotated[Optional[int], typer.Option(help="generation limit")] = None,
    metric: Annotated[Optional[str], typer.Option(help="headline metric (default: the run's eval.metric)")] = None,
    extract: Annotated[Optional[str], typer.Option(help="answer extraction: first_line or regex:PATTERN")] = None,
    num_threads: Annotated[Optional[int], typer.Option(help="CPU threads for torch (default: train.num_threads "
                           "or all cores)")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="recompute base-model results")] = False,
):
    """Fine-tune or prompt? Base zero-shot, base k-shot and tuned on held-out test data, and forgetting."""
    from sftkit.eval.compare import run_compare
    from sftkit.eval.report import print_comparison

    comparison = run_compare(run_dir, str(test) if test else None, shots, output, [] if no_suite else suite,
                             suite_max_examples, max_new_tokens, metric, extract, not no_cache,
                             num_threads=num_threads, console=console)
    print_comparison(comparison, out)
    console.print(f"wrote {Path(comparison['output_dir']) / 'comparison.json'}")


@app.command("safety")
def safety_cmd(
    model: Annotated[str, typer.Argument(help="run directory, model directory, hub id or `default`")],
    against: Annotated[Optional[str], typer.Option(help="second model for before/after deltas, e.g. `default`")] = None,
    output: Annotated[Optional[Path], typer.Option(help="directory for safety.json and predictions.jsonl")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="generation limit per reply")] = 48,
    max_prompts: Annotated[Optional[int], typer.Option(help="prompts per set (stratified subsample; default all 60)")] = None,
    hhh: Annotated[bool, typer.Option("--hhh/--no-hhh", help="score BIG-bench hhh_alignment")] = True,
    hhh_max_examples: Annotated[int, typer.Option(help="seeded subsample of the 221 HHH questions (221 = all)")] = 100,
    judge: Annotated[Optional[str], typer.Option(help="judge model for refusals instead of the rules")] = None,
    batch_size: Annotated[int, typer.Option(help="prompts per generation batch")] = 16,
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16")] = "float32",
    num_threads: Annotated[Optional[int], typer.Option(help="CPU threads for torch (default: all cores)")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="recompute base-model results")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print safety.json instead of tables")] = False,
):
    """Safety check: refusal rate on harmful requests, over-refusal on benign look-alikes, HHH accuracy (95% CIs);
    with --against, both models and the deltas."""
    from sftkit.safety import SafetySettings, print_safety, run_safety

    settings = SafetySettings(max_new_tokens=max_new_tokens, max_prompts=max_prompts, hhh=hhh,
                              hhh_max_examples=hhh_max_examples, dtype=dtype, batch_size=batch_size,
                              num_threads=num_threads)
    result = run_safety(model, against, output_dir=output, settings=settings, judge=judge, use_cache=not no_cache,
                        console=console)
    if as_json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print_safety(result, out)
    console.print(f"wrote {Path(result['output_dir']) / 'safety.json'} and predictions.jsonl")


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
