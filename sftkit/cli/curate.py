"""`sftkit data curate`: command-line options -> the `curate:` config -> `curate()` -> the printed report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from sftkit.cli import root
from sftkit.cli.root import data_app


def options_to_overrides(target: int | None = None, model: str | None = None, max_length: int | None = None,
                         fmt: str | None = None, pii: str | None = None, score: str | None = None,
                         semantic: bool | None = None) -> list[str]:
    """Command-line options as `--set` overrides of the `curate:` section (options win over the file)."""
    sets = []
    for key, value in (("select.target", target), ("model", model), ("max_length", max_length), ("format", fmt),
                       ("pii.action", pii), ("select.score", score), ("semantic.enabled", semantic)):
        if value is not None:
            sets.append(f"{key}={json.dumps(value)}")
    return sets


def build_config(config_path: str | None, overrides: list[str], decontaminate: list[str], **options):
    """The validated `CurateConfig`: file `curate:` section, then `--set`, then the named options."""
    from sftkit.curate.config import load_curate_config

    config = load_curate_config(config_path, list(overrides) + options_to_overrides(**options))
    specs = list(config.decontam.eval)
    for part in (p for item in decontaminate for p in item.split(",") if p):  # `a.jsonl,bigbench:x` works too
        if part not in specs:
            specs.append(part)
    config.decontam.eval = specs
    return config


@data_app.command("curate")
def data_curate(
    inputs: Annotated[list[str], typer.Argument(help="file(s), directory, bigbench:TASK or hub dataset id")],
    output: Annotated[Path, typer.Option("-o", "--output", help="curated JSONL; OUT.rejects.jsonl goes beside it", readable=False)],
    target: Annotated[Optional[int], typer.Option(help="keep at most N rows, ranked by score with diversity")] = None,
    decontaminate: Annotated[Optional[list[str]], typer.Option(help="evaluation set to decontaminate against (repeat, or a comma-separated list)")] = None,
    report: Annotated[Optional[Path], typer.Option(help="report JSON (default OUT.report.json)", readable=False)] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML file whose `curate:` section configures the stages", readable=False)] = None,
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
    from sftkit.curate.pipeline import curate
    from sftkit.curate.report import print_report

    cfg = build_config(str(config) if config else None, overrides or [], decontaminate or [], target=target,
                       model=model, max_length=max_length, fmt=fmt, pii=pii, score=score, semantic=semantic)
    result = curate(inputs, str(output), cfg, str(report) if report else None)
    if as_json:
        summary = {k: result[k] for k in ("rows_read", "rows_kept", "rows_rejected", "stages", "output", "rejects",
                                          "report_path")}
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        print_report(result, root.out)
