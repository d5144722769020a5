"""The closing sections: measured time and memory against the pre-run estimate, the exports with their
checks, and the resolved config and library versions (collapsed)."""

from __future__ import annotations

import json

from sftkit.report.figures import megabytes, ratio, seconds
from sftkit.report.html import Html, details, join, note, pre, section, table, tag


def cost_section(run) -> Html:
    s = run.summary
    if not s:
        return section("cost", "Cost", note("Training did not finish: no summary.json."))
    est = s.get("estimate") or {}
    rows = [["training time (optimizer steps)", seconds(s.get("train_seconds")), seconds(est.get("seconds")),
             ratio(s.get("train_seconds"), est.get("seconds"))],
            ["wall time (load, train, validate, export)", seconds(s.get("wall_seconds")), "-", "-"],
            ["peak memory", megabytes(s.get("peak_memory_mb")), megabytes(est.get("memory_mb")),
             ratio(s.get("peak_memory_mb"), est.get("memory_mb"))]]
    flops = (est.get("flops") or {}).get("train") if isinstance(est.get("flops"), dict) else est.get("flops")
    if flops:
        rows.append(["training FLOPs", "-", f"{flops:.3g}", "-"])
    parts = [table(["", "measured", "estimated before the run", "measured / estimated"], rows, numeric={1, 2, 3})]
    params = s.get("trainable_params"), s.get("total_params")
    if all(params):
        parts.append(tag("p", f"{params[0]:,} trainable of {params[1]:,} parameters ({params[0] / params[1]:.2%}); "
                              f"{s.get('world_size', 1)} process(es)."))
    if not est:
        parts.append(note("No estimate in summary.json (`sftkit estimate CONFIG` sizes a run before it starts)."))
    for key in ("adapter", "merged"):
        if key in (s.get("outputs") or {}):
            card = f" (model card: {key}/README.md)" if (run.path / key / "README.md").is_file() else ""
            parts.append(tag("p", f"{key}/: {s['outputs'][key]}{card}"))
    return section("cost", "Cost", join(parts))


def _export_checks(report: dict) -> list[list]:
    """(check, result) rows from an export report: booleans anywhere under `checks`/`verification`."""
    rows = []

    def walk(node, prefix):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        elif isinstance(node, bool):
            rows.append([prefix.rstrip("."), "passed" if node else "FAILED"])

    for key in ("checks", "verification", "verify"):
        walk(report.get(key), "")
    return rows


def exports_section(run) -> Html:
    if not run.exports:
        return Html("")
    parts = []
    for report in run.exports:
        fmt = report.get("format") or report["dir"].rstrip("/").rsplit("/", 1)[-1]
        facts = ", ".join(f"{k}: {report[k]}" for k in ("quant", "dtype", "size_bytes", "num_bytes") if k in report)
        parts.append(tag("h3", f"{fmt}: {report['dir']}"))
        if facts:
            parts.append(tag("p", facts))
        checks = _export_checks(report)
        parts.append(table(["check", "result"], checks, row_classes=[None if r[1] == "passed" else "flagged"
                                                                     for r in checks])
                     if checks else note("export_report.json lists no checks (exported with --no-verify?)."))
    return section("exports", "Exports", join(parts))


def config_section(run) -> Html:
    parts = [details("resolved config (config.yaml)", pre(run.config_text or "no config.yaml")),
             details("versions (versions.json)", pre(json.dumps(run.versions, indent=2, sort_keys=True)))]
    return section("config", "Config and versions", join(parts))
