"""Everything a run directory holds that the report shows, read once into a `RunData`.

A run directory (the `output_dir` of `sftkit train` or `sftkit dpo`) has summary.json, metrics.jsonl,
config.yaml, versions.json, data/ and rejects.jsonl; after the evaluations also compare/ (comparison.json,
predictions.jsonl), safety/safety.json, redteam/redteam.json and export/FORMAT/export_report.json. Each file
is optional except that a run needs summary.json or metrics.jsonl; a file that exists but cannot be parsed is
a `file:line` error, never skipped.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sftkit.errors import UserError

TEST_LABELS = ("base_zero_shot", "base_k_shot", "tuned")
MAX_REJECTS_SHOWN = 20


@dataclass
class RunData:
    """What one run measured. `kind` is `sft` or `dpo`; absent evaluations are None."""

    path: Path
    name: str
    kind: str
    summary: dict
    config: dict
    config_text: str
    versions: dict
    metrics: list[dict]
    comparison: dict | None = None
    test_predictions: dict[str, list[dict]] = field(default_factory=dict)  # label -> rows, test split only
    test_questions: dict[tuple[str, int], str] = field(default_factory=dict)  # (source, line) -> last user turn
    safety: dict | None = None
    redteam: dict | None = None
    exports: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    tokens: dict | None = None  # sftkit.report.data.token_counts

    @property
    def finished(self) -> bool:
        return bool(self.summary)


def read_json(path: Path) -> dict | None:
    """The object in `path`, None when there is no such file; bad JSON is a `file:line` UserError."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"not valid JSON ({exc.msg}): the file is damaged; re-run the step that wrote it",
                        str(path), exc.lineno) from None


def read_jsonl(path: Path, keep=None) -> list[dict]:
    """The rows of `path` (those `keep(row)` accepts); [] when there is no such file."""
    if not path.is_file():
        return []
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"not valid JSON ({exc.msg}): the file is damaged; re-run the step that wrote it",
                                str(path), number) from None
            if keep is None or keep(row):
                rows.append(row)
    return rows


def read_config(run: Path) -> tuple[dict, str]:
    path = run / "config.yaml"
    if not path.is_file():
        return {}, ""
    import yaml

    text = path.read_text(encoding="utf-8")
    try:
        return yaml.safe_load(text) or {}, text
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UserError("not valid YAML: the file is damaged", str(path), mark.line + 1 if mark else None) from None


def _is_test_row(row: dict, test_spec: str) -> bool:
    """A prediction on the test split (the k-shot task is named `SPEC (K-shot)`; suite rows are other tasks)."""
    task = row.get("task", "")
    return row.get("model") in TEST_LABELS and (task == test_spec or task.startswith(test_spec + " ("))


def _last_user_turn(row: dict) -> str:
    turns = [m.get("content", "") for m in row.get("messages", []) if m.get("role") == "user"]
    return turns[-1] if turns else ""


def collect_run(run_dir: str | Path, with_tokens: bool = True) -> RunData:
    """Read a run directory. `with_tokens` also re-tokenises the training split (the data histogram), which
    loads the run's tokenizer."""
    run = Path(run_dir)
    summary = read_json(run / "summary.json")
    if summary is None and not (run / "metrics.jsonl").is_file():
        raise UserError(f"{run} is not a run directory (no summary.json or metrics.jsonl): pass the output_dir of "
                        "`sftkit train` or `sftkit dpo`")
    config, config_text = read_config(run)
    summary = summary or {}
    kind = "dpo" if "dpo" in config or "num_train_pairs" in summary else "sft"
    data = RunData(path=run, name=run.resolve().name, kind=kind, summary=summary, config=config,
                   config_text=config_text, versions=read_json(run / "versions.json") or {},
                   metrics=read_jsonl(run / "metrics.jsonl"))
    data.comparison = read_json(run / "compare" / "comparison.json")
    if data.comparison:
        test_file = Path(data.comparison["test"]["path"])
        for row in read_jsonl(run / "compare" / "predictions.jsonl", keep=lambda r: _is_test_row(r, str(test_file))):
            data.test_predictions.setdefault(row["model"], []).append(row)
        for number, row in enumerate(read_jsonl(test_file if test_file.is_file() else run / "data" / "test.jsonl"), 1):
            data.test_questions[(row.get("source", str(test_file)), row.get("line", number))] = _last_user_turn(row)
    data.safety = read_json(run / "safety" / "safety.json")
    if data.safety is None and (summary.get("safety") or {}).get("output_dir"):
        data.safety = read_json(Path(summary["safety"]["output_dir"]) / "safety.json")
    data.redteam = read_json(run / "redteam" / "redteam.json")
    for report in sorted((run / "export").glob("*/export_report.json")):
        data.exports.append({"dir": str(report.parent), **(read_json(report) or {})})
    rejects = read_jsonl(run / "rejects.jsonl")
    data.rejects_by_reason = dict(Counter(r.get("reason", "unknown") for r in rejects))
    data.rejects = rejects[:MAX_REJECTS_SHOWN]
    if with_tokens and config:
        from sftkit.report.data import token_counts

        data.tokens = token_counts(run, config, kind)
    return data


def find_runs(paths: list[str | Path]) -> tuple[list[Path], list[Path]]:
    """(run directories, files passed over) for `paths`: each a run, or a directory whose subdirectories are runs.

    Among several paths a plain file is passed over (`sftkit report runs/*` also matches runs/comparison.html);
    a single path must be a directory.
    """
    found: list[Path] = []
    files: list[Path] = []
    for item in map(Path, paths):
        if not item.exists():
            raise UserError(f"{item} does not exist: check the path (pass the output_dir of `sftkit train`)")
        if not item.is_dir() and len(paths) > 1:
            files.append(item)
            continue
        if not item.is_dir():
            raise UserError(f"{item} is not a directory: pass run directories (the output_dir of `sftkit train`)")
        if (item / "summary.json").is_file() or (item / "metrics.jsonl").is_file():
            found.append(item)
            continue
        inner = sorted(p for p in item.iterdir() if p.is_dir() and (p / "summary.json").is_file())
        if not inner:
            raise UserError(f"{item} is not a run directory and holds none (no summary.json in it or its "
                            "subdirectories): pass the output_dir of `sftkit train`")
        found.extend(inner)
    if not found:
        raise UserError(f"no run directory among {', '.join(map(str, paths))}: pass the output_dir of `sftkit train`")
    return found, files
