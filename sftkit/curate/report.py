"""The curation report: counts per stage and reason, length histograms, examples of each rejection reason,
and why kept rows were kept; as JSON, and as rich tables for the terminal."""

from __future__ import annotations

import numpy as np
from rich.console import Console
from rich.table import Table

from sftkit.curate.pii import PIIDetector
from sftkit.curate.text import conversation_text

HISTOGRAM_EDGES = [0, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
_SNIPPET_CHARS = 160


def histogram(values: np.ndarray) -> list[int]:
    """Counts per bin [e_i, e_i+1), the last bin open-ended."""
    edges = np.array(HISTOGRAM_EDGES[1:])
    bins = np.searchsorted(edges, values, side="right")
    return np.bincount(bins, minlength=len(HISTOGRAM_EDGES)).tolist()


def _snippet(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _SNIPPET_CHARS else text[:_SNIPPET_CHARS - 3] + "..."


def build_report(run, data_report, inputs: list[str], out_path, rejects_path, output_format: str, tokenizer,
                 seconds: dict) -> dict:
    config, feats, examples = run.config, run.feats, run.examples
    kept_rows = np.nonzero(run.alive)[0]
    flags: dict[str, int] = {}
    for found in feats.flags.values():
        for _, reason, _ in found:
            flags[reason] = flags.get(reason, 0) + 1
    masker = PIIDetector(["email", "phone", "credit_card", "secret"])  # examples in a report never leak PII
    examples_by_reason: dict[str, list[dict]] = {}
    limit = config.examples_per_reason
    for item in data_report.rejects:
        shown = examples_by_reason.setdefault(item["reason"], [])
        if len(shown) < limit:
            shown.append({"source": item["source"], "line": item["line"], "stage": "validate",
                          "detail": item["message"], "text": _snippet(masker.mask(str(item["row"])))})
    for row in sorted(run.drops):
        stage, reason, detail = run.drops[row]
        shown = examples_by_reason.setdefault(reason, [])
        if len(shown) < limit:
            ex = examples[row]
            shown.append({"source": ex.source, "line": ex.line, "stage": stage, "detail": detail,
                          "text": _snippet(masker.mask(conversation_text(ex.messages)))})
    selecting = any(s["stage"] == "select" and s.get("target") for s in run.stages)
    kept = []
    for row in kept_rows.tolist():
        row_flags = feats.flags.get(row, ())
        if selecting or row_flags:
            entry = {"source": examples[row].source, "line": examples[row].line, "why": run.why_kept.get(row, "")}
            if row_flags:
                entry["flags"] = {r: d for _, r, d in row_flags}
            kept.append(entry)
    rows_read = data_report.rows_read
    stage_seconds = {s["stage"]: s["seconds"] for s in run.stages}
    return {
        "inputs": inputs,
        "output": str(out_path),
        "rejects": str(rejects_path),
        "output_format": output_format,
        "rows_read": rows_read,
        "rows_kept": int(len(kept_rows)),
        "rows_rejected": rows_read - int(len(kept_rows)),
        "stages": run.stages,
        "flags": dict(sorted(flags.items())),
        "length_histograms": {
            "unit": "words",
            "edges": HISTOGRAM_EDGES,
            "conversation_before": histogram(feats.conversation_words),
            "conversation_after": histogram(feats.conversation_words[kept_rows]),
            "reply_before": histogram(feats.reply_words),
            "reply_after": histogram(feats.reply_words[kept_rows]),
        },
        "examples": examples_by_reason,
        "why_kept": "each row listed under `kept` says why; rows not listed passed every filter"
                    + (" (no --target, so every such row is kept)" if not selecting else ""),
        "kept": kept,
        "tokenizer": getattr(tokenizer, "name_or_path", None),
        "max_length": config.max_length_tokens,
        "workers": run.workers,
        "seconds": {**stage_seconds, **{k: round(v, 3) for k, v in seconds.items()}},
        "config": config.model_dump(mode="json"),
    }


def print_report(report: dict, console: Console) -> None:
    """Per-stage table, histograms before/after, and one example per rejection reason."""
    table = Table(title=f"data curate: {report['rows_read']} rows read, {report['rows_kept']} kept, "
                        f"{report['rows_rejected']} rejected",
                  caption=f"s: seconds; for the per-row detectors, summed over {report['workers']} worker(s)")
    for name, justify in (("stage", "left"), ("in", "right"), ("dropped", "right"), ("out", "right"),
                          ("reasons", "left"), ("s", "right")):
        table.add_column(name, justify=justify)
    for s in report["stages"]:
        reasons = ", ".join(f"{k} {v}" for k, v in s["reasons"].items())
        notes = [f"{k} {s[k]}" for k in ("flagged_kept", "clusters", "rows_tokenized", "embedding") if s.get(k)]
        if notes:
            reasons = "; ".join(filter(None, [reasons, ", ".join(notes)]))
        table.add_row(s["stage"], str(s["rows_in"]), str(s["dropped"]), str(s["rows_out"]), reasons,
                      f"{s['seconds']:.1f}")
    console.print(table)
    hist = report["length_histograms"]
    htable = Table(title=f"lengths ({hist['unit']}): before -> after")
    for name in ("bin", "conversation", "reply"):
        htable.add_column(name, justify="right")
    edges = hist["edges"]
    for i in range(len(edges)):
        label = f"{edges[i]}-{edges[i + 1] - 1}" if i + 1 < len(edges) else f"{edges[i]}+"
        htable.add_row(label, f"{hist['conversation_before'][i]} -> {hist['conversation_after'][i]}",
                       f"{hist['reply_before'][i]} -> {hist['reply_after'][i]}")
    console.print(htable)
    if report["examples"]:
        etable = Table(title="an example of each rejection reason")
        for name in ("reason", "where", "why", "text"):
            etable.add_column(name, overflow="fold")
        for reason, shown in report["examples"].items():
            if shown:
                ex = shown[0]
                etable.add_row(reason, f"{ex['source']}:{ex['line']}", ex["detail"], ex["text"])
        console.print(etable)
    console.print(f"curated: {report['output']}  rejects: {report['rejects']}  report: {report.get('report_path')}  "
                  f"({report['seconds']['total']:.1f} s)")
