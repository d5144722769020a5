"""`sftkit data curate`: command-line options -> the `curate:` config -> `curate()` -> printed report."""

from __future__ import annotations

import json

from rich.console import Console

from sftkit.curate.config import CurateConfig, load_curate_config
from sftkit.curate.pipeline import curate, output_paths
from sftkit.curate.report import print_report
from sftkit.paths import check_output, check_spec


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


def build_config(config_path: str | None, overrides: list[str], decontaminate: list[str], **options) -> CurateConfig:
    """The validated config: file `curate:` section, then `--set`, then the named options."""
    config = load_curate_config(config_path, list(overrides) + options_to_overrides(**options))
    specs = list(config.decontam.eval)
    for part in (p for item in decontaminate for p in item.split(",") if p):  # `a.jsonl,bigbench:x` works too
        if part not in specs:
            specs.append(part)
    config.decontam.eval = specs
    return config


def run_curate(inputs: list[str], output: str, config: CurateConfig, report_path: str | None, out: Console,
               as_json: bool = False) -> dict:
    """Curate, then print the report. The output, rejects and report paths, the decontamination sets and the
    model are checked first, so a wrong path stops before any row is read."""
    for path, what in zip(output_paths(output, report_path), ("-o/--output", "the rejects file", "--report")):
        check_output(path, what, "file")
    for spec in config.decontam.eval:
        check_spec("data", spec, "decontamination set")
    check_spec("model", config.model, "curate.model")
    report = curate(inputs, output, config, report_path)
    if as_json:
        summary = {k: report[k] for k in ("rows_read", "rows_kept", "rows_rejected", "stages", "output", "rejects",
                                          "report_path")}
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        print_report(report, out)
    return report
