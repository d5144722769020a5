"""`sftkit eval`, `compare`, `safety`: measure a model, against prompting and against its base."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from sftkit.cli import root
from sftkit.cli.root import ModelArg, app
from sftkit.errors import UserError
from sftkit.eval.settings import DEFAULT_SUITE_MAX_EXAMPLES, CompareSettings, EvalSettings
from sftkit.safety.settings import SafetySettings
from sftkit.paths import check_input, check_spec


def _check_paths(*specs: tuple) -> None:
    """(kind, spec, option name) triples through `check_spec`, so a wrong path stops before any model loads."""
    for kind, spec, what in specs:
        check_spec(kind, spec, what)


# Path parameters say readable=False: sftkit.paths checks them and its one line says how to fix the path.
@app.command("eval")
def eval_cmd(
    model: Annotated[str, typer.Option(help="`default`, a model directory, a hub id, or a run directory")] = "default",
    task: Annotated[Optional[list[str]], typer.Option("--task", help="data file (generation), bigbench:TASK, "
                    "lm-eval-style multiple-choice JSONL, perplexity:fables or perplexity:FILE (repeatable)")] = None,
    suite: Annotated[bool, typer.Option("--suite", help="add the default forgetting suite")] = False,
    output: Annotated[Optional[Path], typer.Option(help="directory for eval.json and predictions.jsonl", readable=False)] = None,
    max_examples: Annotated[Optional[int], typer.Option(
        help=f"seeded subsample per task (suite default: {DEFAULT_SUITE_MAX_EXAMPLES})")] = None,
    max_new_tokens: Annotated[Optional[int], typer.Option(
        help=f"generation limit (default {EvalSettings.max_new_tokens})")] = None,
    metric: Annotated[Optional[str], typer.Option(help="headline generation metric: exact_match, "
                      f"normalized_exact_match, contains, token_f1 (default {EvalSettings.metric})")] = None,
    extract: Annotated[Optional[str], typer.Option(help="answer extraction: first_line or regex:PATTERN")] = None,
    dtype: Annotated[Optional[str], typer.Option(
        help=f"auto (bfloat16 on CPUs with native bf16, as training picks), float32, bfloat16 or float16 "
             f"(default {EvalSettings.dtype})")] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        help=f"prompts per generation batch (default {EvalSettings.generation_batch_size})")] = None,
    scoring_batch_size: Annotated[Optional[int], typer.Option(
        help=f"questions or documents per scoring pass (default {EvalSettings.scoring_batch_size})")] = None,
    seed: Annotated[int, typer.Option(help="subsampling seed")] = 1234,
    num_threads: Annotated[Optional[int], typer.Option(help="CPU threads for torch (default: all cores)")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="recompute even if cached")] = False,
    skip_bad_rows: Annotated[bool, typer.Option("--skip-bad-rows", help="count and skip bad rows")] = False,
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help="run model code")] = False,
):
    """Evaluate a base model or a run on tasks: metrics with n and 95% bootstrap CIs, per-example predictions."""
    from sftkit.eval.evaluator import evaluate
    from sftkit.eval.report import print_eval
    from sftkit.eval.suite import DEFAULT_MAX_EXAMPLES, load_suite
    from sftkit.eval.tasks import load_task
    from sftkit.paths import results_dir

    if not task and not suite:
        raise UserError("nothing to evaluate: pass --task TASK (repeatable) and/or --suite")
    settings = EvalSettings.given(max_new_tokens=max_new_tokens, metric=metric, extract=extract, dtype=dtype,
                                  generation_batch_size=batch_size, scoring_batch_size=scoring_batch_size,
                                  num_threads=num_threads)
    output = output or results_dir(model, "eval")
    _check_paths(("model", model, "--model"), ("output_dir", output, "--output"),
                 *(("task", t, "--task") for t in task or []))
    tasks = [load_task(t, max_examples, seed, "skip" if skip_bad_rows else "error") for t in task or []]
    if suite:
        tasks += load_suite(None, max_examples or DEFAULT_MAX_EXAMPLES)
    report = evaluate(model, tasks, output, settings, not no_cache, trust_remote_code,
                      {"max_examples": max_examples, "seed": seed})
    print_eval(report, root.out)
    root.console.print(f"wrote {output / 'eval.json'} and {output / 'predictions.jsonl'}")


@app.command("compare")
def compare_cmd(
    run_dir: Annotated[Path, typer.Argument(help="output directory of `sftkit train`", readable=False)],
    test: Annotated[Optional[Path], typer.Option(help="test data (default: RUN/data/test.jsonl)", readable=False)] = None,
    shots: Annotated[Optional[int], typer.Option(
        help=f"examples in the prompting baseline (default: the run's eval.shots, else {CompareSettings.shots})")] = None,
    output: Annotated[Optional[Path], typer.Option(help="directory for comparison.json (default RUN/compare)", readable=False)] = None,
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

    check_input(run_dir, "run directory", "dir", missing="pass the output_dir of `sftkit train`")
    if test:
        check_input(test, "--test", "file")
    _check_paths(("output_dir", output or run_dir / "compare", "--output"),
                 *(("task", t, "--suite") for t in suite or []))
    comparison = run_compare(run_dir, str(test) if test else None, shots, output, [] if no_suite else suite,
                             suite_max_examples, max_new_tokens, metric, extract, not no_cache,
                             num_threads=num_threads, console=root.console)
    print_comparison(comparison, root.out)
    root.console.print(f"wrote {Path(comparison['output_dir']) / 'comparison.json'}")


@app.command("safety")
def safety_cmd(
    model: ModelArg,
    against: Annotated[Optional[str], typer.Option(help="second model for before/after deltas, e.g. `default`")] = None,
    output: Annotated[Optional[Path], typer.Option(help="directory for safety.json and predictions.jsonl", readable=False)] = None,
    max_new_tokens: Annotated[Optional[int], typer.Option(
        help=f"generation limit per reply (default {SafetySettings.max_new_tokens})")] = None,
    max_prompts: Annotated[Optional[int], typer.Option(help="prompts per set (stratified subsample; default all 60)")] = None,
    hhh: Annotated[bool, typer.Option("--hhh/--no-hhh", help="score BIG-bench hhh_alignment")] = SafetySettings.hhh,
    hhh_max_examples: Annotated[Optional[int], typer.Option(help="seeded subsample of the 221 HHH questions "
                                f"(221 = all; default {SafetySettings.hhh_max_examples})")] = None,
    judge: Annotated[Optional[str], typer.Option(help="judge model for refusals instead of the rules")] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        help=f"prompts per generation batch (default {SafetySettings.batch_size})")] = None,
    dtype: Annotated[Optional[str], typer.Option(
        help=f"float32, bfloat16 or float16 (default {SafetySettings.dtype})")] = None,
    num_threads: Annotated[Optional[int], typer.Option(help="CPU threads for torch (default: all cores)")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="recompute base-model results")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print safety.json instead of tables")] = False,
):
    """Safety check: refusal rate on harmful requests, over-refusal on benign look-alikes, HHH accuracy (95% CIs);
    with --against, both models and the deltas."""
    from sftkit.paths import results_dir
    from sftkit.safety import print_safety, run_safety

    _check_paths(("model", model, "model"), ("model", against, "--against"), ("model", judge, "--judge"),
                 ("output_dir", output or results_dir(model, "safety"), "--output"))
    settings = SafetySettings.given(max_new_tokens=max_new_tokens, max_prompts=max_prompts, hhh=hhh,
                                    hhh_max_examples=hhh_max_examples, dtype=dtype, batch_size=batch_size,
                                    num_threads=num_threads)
    result = run_safety(model, against, output_dir=output, settings=settings, judge=judge, use_cache=not no_cache,
                        console=root.console)
    if as_json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print_safety(result, root.out)
    root.console.print(f"wrote {Path(result['output_dir']) / 'safety.json'} and predictions.jsonl")
