"""The Python API: every CLI verb as a function for notebooks and scripts, each returning a typed result
(sftkit/results.py) whose fields are those of the JSON file the verb writes.

    from sftkit import SFTConfig, train
    result = train(SFTConfig(data={"train_path": "data.jsonl"}, output_dir="runs/mine"))
    result = train("my.yaml", overrides=["train.max_steps=20"], train_data=[{"messages": [...]}, ...])

Configs are given as objects, YAML paths or plain mappings; `overrides` are `--set` items. Training data can
be given in memory (a list of rows in any supported format, or a `datasets.Dataset`): it is written to
`OUTPUT_DIR/inputs/*.jsonl` and the config points there, so the run directory still describes itself.
"""

from __future__ import annotations

import json
from pathlib import Path

from sftkit.results import (CompareResult, CurateResult, DPOResult, EvalResult, ExportResult, RedteamResult,
                            ReportResult, SafetyResult, SweepResult, TrainResult, from_json)


def _write_rows(rows, path: Path) -> str:
    """Rows given in memory (dicts, or a datasets.Dataset) as a JSONL file; a path is returned unchanged."""
    if isinstance(rows, (str, Path)):
        return str(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(dict(row), ensure_ascii=False, default=str) + "\n")
    return str(path)


def _with_data(config, sections: dict, model_cls, resume: bool):
    """The validated config with in-memory data written beside the run and the data paths pointing at it."""
    from sftkit.config import load_config
    from sftkit.training.checkpoint import refuse_to_overwrite

    out_dir = Path(config.output_dir)
    if any(rows is not None and not isinstance(rows, (str, Path)) for rows in sections.values()):
        refuse_to_overwrite(out_dir, resume, True)  # before a finished run's inputs/ could be overwritten
    sets = [f"data.{key}={json.dumps(_write_rows(rows, out_dir / 'inputs' / f'{key[:-5]}.jsonl'))}"
            for key, rows in sections.items() if rows is not None]
    return load_config(config, sets, model_cls=model_cls) if sets else config


def train(config=None, overrides: list[str] | None = None, *, train_data=None, val_data=None, test_data=None,
          resume: bool = False, quiet: bool = False, stop_at_step: int | None = None) -> TrainResult:
    """`sftkit train`: fine-tune and return the run's summary.

    Args:
        config: an `SFTConfig`, a YAML path, or a mapping of sections; None takes every default.
        overrides: `section.key=value` items, as `--set` on the command line.
        train_data, val_data, test_data: rows in memory (or a path), instead of `data.*_path`.
        resume: continue from the newest complete checkpoint in `output_dir`.
        quiet: no start-up table, progress bar or summary table.
        stop_at_step: pause after this optimizer step (checkpointed, weights exported, `paused_at_step` set, no
            summary.json); the schedule still spans the whole run, and `resume=True` continues it exactly.

    Raises:
        ConfigError: every problem in the config, before any model loads.
    """
    from sftkit.config import load_config
    from sftkit.recipes.sft import train as run_sft
    from sftkit.recipes.sft_config import SFTConfig

    config = load_config(config, overrides, model_cls=SFTConfig, require_train_path=train_data is None)
    config = _with_data(config, {"train_path": train_data, "val_path": val_data, "test_path": test_data},
                        SFTConfig, resume)
    summary = run_sft(config, resume=resume, quiet=quiet, stop_at_step=stop_at_step)
    return TrainResult.from_summary(summary, config.output_dir)


def dpo(config=None, overrides: list[str] | None = None, *, train_data=None, val_data=None, resume: bool = False,
        quiet: bool = False) -> DPOResult:
    """`sftkit dpo`: align a model or an SFT run to preference pairs; arguments as for `train`."""
    from sftkit.config import load_config
    from sftkit.recipes.dpo import train_dpo
    from sftkit.recipes.dpo_config import DPOConfig

    config = load_config(config, overrides, model_cls=DPOConfig, require_train_path=train_data is None)
    config = _with_data(config, {"train_path": train_data, "val_path": val_data}, DPOConfig, resume)
    summary = train_dpo(config, resume=resume, quiet=quiet)
    return DPOResult.from_summary(summary, config.output_dir)


def evaluate(model: str = "default", tasks: list[str] | str = (), *, suite: bool = False,
             output_dir: str | Path | None = None, max_examples: int | None = None, seed: int = 1234,
             use_cache: bool = True, trust_remote_code: bool = False, **settings) -> EvalResult:
    """`sftkit eval`: metrics with n and 95% intervals for a model or run on task specs (`bigbench:NAME`, data
    files, lm-eval-style JSONL, `perplexity:...`); `settings` are EvalSettings fields (max_new_tokens, metric,
    extract, dtype, ...)."""
    from sftkit.eval.settings import EvalSettings
    from sftkit.eval.evaluator import evaluate as run_eval
    from sftkit.eval.suite import DEFAULT_MAX_EXAMPLES, load_suite
    from sftkit.eval.tasks import load_task
    from sftkit.paths import results_dir

    specs = [tasks] if isinstance(tasks, str) else list(tasks)
    loaded = [load_task(spec, max_examples, seed) for spec in specs]
    if suite:
        loaded += load_suite(None, max_examples or DEFAULT_MAX_EXAMPLES)
    output_dir = Path(output_dir) if output_dir else results_dir(model, "eval")
    report = run_eval(model, loaded, output_dir, EvalSettings(**settings), use_cache, trust_remote_code,
                      {"max_examples": max_examples, "seed": seed})
    return from_json(EvalResult, report, output_dir)


def compare(run_dir: str | Path, **options) -> CompareResult:
    """`sftkit compare`: base zero-shot, base k-shot and tuned on the run's test split, the gain over prompting
    with its paired interval, and forgetting; `options` are those of `sftkit.eval.compare.run_compare`."""
    from sftkit.eval.compare import run_compare

    comparison = run_compare(run_dir, **options)
    return from_json(CompareResult, comparison, comparison["output_dir"])


def safety(model: str, against: str | None = None, **options) -> SafetyResult:
    """`sftkit safety`: refusal, over-refusal and HHH with intervals (and deltas `against` another model);
    `options` are those of `sftkit.safety.run_safety`."""
    from sftkit.safety import run_safety

    result = run_safety(model, against, **options)
    return from_json(SafetyResult, result, result["output_dir"])


def redteam(model: str | None = None, against: str | None = None, **options) -> RedteamResult:
    """`sftkit redteam`: attack success per attack over harmful seeds, with intervals, deltas against `direct`
    and against `against`; `options` are those of `sftkit.redteam.run_redteam` (endpoint, api_key, settings
    (a RedteamSettings), judge, guard, output_dir, ...)."""
    from sftkit.redteam import run_redteam

    result = run_redteam(model, against, **options)
    return from_json(RedteamResult, result, result["output_dir"])


def curate(inputs: list[str] | str, output: str | Path, config=None, overrides: list[str] | None = None,
           report_path: str | Path | None = None) -> CurateResult:
    """`sftkit data curate`: every input row lands in `output` or its rejects file; returns the report.

    config: a `CurateConfig`, or a YAML path whose `curate:` section is read; overrides: `--set` items."""
    from sftkit.curate.config import CurateConfig, load_curate_config
    from sftkit.curate.pipeline import curate as run_curate

    if not isinstance(config, CurateConfig):
        config = load_curate_config(str(config) if config else None, list(overrides or []))
    report = run_curate([inputs] if isinstance(inputs, str) else list(inputs), output, config, report_path)
    return from_json(CurateResult, report)


def export(model: str | Path, format: str = "gguf", quant: str | None = None, *, dtype: str = "bf16",
           output: str | Path | None = None, force: bool = False, verify: bool = True, template: str | None = None,
           base: str | None = None, max_lora_rank: int | None = None, max_new_tokens: int = 64) -> ExportResult:
    """`sftkit export`: a run or model as `hf` (vLLM-ready safetensors, dtype `bf16`/`fp16`/`fp32`), `gguf`
    (quant `f32`, `f16`, `bf16`, `q8_0` (default), `q4_k_m`, `q5_k_m`, `q6_k`) or `ollama` (GGUF + Modelfile),
    verified against the model it came from; see sftkit.export.exporter.run_export."""
    from sftkit.export.exporter import run_export

    report = run_export(str(model), format, quant, dtype=dtype, output=output, force=force, verify=verify,
                        template=template, base=base, max_lora_rank=max_lora_rank, max_new_tokens=max_new_tokens)
    return from_json(ExportResult, report, report["output_dir"])


def sweep(config, overrides: list[str] | None = None, *, auto: bool = False, quiet: bool = False) -> SweepResult:
    """`sftkit sweep`: successive halving over a search space on validation, then the held-out comparison of
    the winner with the base config; calling it again on an interrupted sweep continues it.

    Args:
        config: a `SweepConfig`, a SWEEP.yaml path, or a mapping (`base`, `search`, `budget`, ...); with
            `auto`, a plain `sftkit train` config path or mapping is its own base.
        overrides: `key=value` items (`trials=4`, `base.train.micro_batch_size=4`), as `--set`.
        auto: add the built-in search space for the base's method (sftkit/sweep/auto.py).
        quiet: no live leaderboard or tables.

    Raises:
        ConfigError: every problem in the sweep and its trial configs, before any model loads.
    """
    from sftkit.sweep.config import load_sweep
    from sftkit.sweep.runner import run_sweep

    plan = load_sweep(config, overrides, auto=auto)
    return from_json(SweepResult, run_sweep(plan, quiet=quiet), plan.out_dir)


def report(runs, output: str | Path | None = None, *, screenshot: str | Path | None = None,
           model_cards: bool = True) -> ReportResult:
    """`sftkit report`: one run (a path) -> RUN/report.html and its model cards; several runs, or a directory
    of runs -> the comparison page (default: comparison.html in their common parent).

    Args:
        runs: a run directory, a directory holding run directories, or a list of either (plain files in a list
            are passed over and listed in `passed_over`: a shell glob such as runs/* matches the pages too).
        output: where the page goes (default: as above).
        screenshot: also write a PNG of the page's top (needs a system Chromium).
        model_cards: for a single run, also rewrite README.md in adapter/, merged/ and export/*/.
    """
    from sftkit.report import write_comparison, write_model_cards, write_report
    from sftkit.report.browser import screenshot as take_screenshot
    from sftkit.report.collect import find_runs

    given = [runs] if isinstance(runs, (str, Path)) else list(runs)
    found, passed_over = find_runs(given)
    cards: list[Path] = []
    if len(found) == 1 and len(given) == 1 and Path(given[0]) == found[0]:
        if model_cards:
            cards = write_model_cards(found[0])
        path, kind = write_report(found[0], output), "run"
    else:
        path, kind = write_comparison(found, output), "comparison"
    shot = take_screenshot(path, screenshot) if screenshot else None
    return ReportResult(path=path, kind=kind, runs=[str(p) for p in found], model_cards=cards, screenshot=shot,
                        passed_over=[str(p) for p in passed_over],
                        raw={"path": str(path), "kind": kind, "runs": [str(p) for p in found],
                             "model_cards": [str(c) for c in cards], "screenshot": str(shot) if shot else None,
                             "passed_over": [str(p) for p in passed_over]})
