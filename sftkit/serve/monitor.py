"""`sftkit monitor LOG`: an audit log's rates per time window, and the alerts that fire against the rates the
run was evaluated at.

Rates per window: errors (5xx), guardrail (requests with a blocked input or a withheld reply), refusal (of
the model's replies), PII (replies holding personal data), and drift (prompts far from the training prompts,
by length and by embedding). An alert fires when the lower end of a rate's 95% Wilson interval is above
`factor` times its baseline, so a handful of events in a quiet window does not alarm. Baselines:
  - refusal: the over-refusal rate on benign prompts the run's safety evaluation stored in RUN/summary.json
    (served traffic is mostly benign), else the log's first window;
  - guardrail: the log's first window;
  - drift: the share that is far by construction (2% by length, 1% by embedding; see sftkit.serve.drift);
  - errors and PII: fixed ceilings (`max_error_rate`; `max_pii_rate`, default 0: any reply with personal data
    alerts, in any window) rather than multiples.
A baseline below `min_baseline` is raised to it (a rate evaluated at 0 would make any event an alert).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sftkit.errors import UserError
from sftkit.serve.audit import log_files
from sftkit.serve.drift import EXPECTED_FAR_SHARE

Z_95 = statistics.NormalDist().inv_cdf(0.975)


@dataclass
class Thresholds:
    factor: float = 2.0  # alert when a rate is surely above factor x its baseline
    min_baseline: float = 0.01
    max_error_rate: float = 0.05
    max_pii_rate: float = 0.0
    min_count: int = 20  # windows with fewer requests (or replies) raise no alert for that rate


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of k successes in n trials."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + Z_95**2 / (2 * n)) / (1 + Z_95**2 / n)
    half = Z_95 * math.sqrt(p * (1 - p) / n + Z_95**2 / (4 * n * n)) / (1 + Z_95**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def read_records(path: str | Path) -> tuple[list[dict], list[str]]:
    """The records of a log and its rotated files, by time; and the unreadable lines as `file:line` notes."""
    if Path(path).is_dir():
        raise UserError(f"audit log {path} is a directory: give the audit.jsonl file (or a run directory)")
    files = log_files(path)
    if not files:
        raise UserError(f"audit log {path} does not exist: give the --audit-log of a `sftkit serve` "
                        "(default RUN/serve/audit.jsonl)")
    records, bad = [], []
    for file in files:
        for line_no, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            try:
                record = json.loads(line)
                float(record["time"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                bad.append(f"{file}:{line_no}")
                continue
            records.append(record)
    return sorted(records, key=lambda r: r["time"]), bad


def _counts(records: list[dict]) -> dict:
    answered = [r for r in records if r.get("status") == 200]
    replies = [x for r in answered for x in r.get("refused") or []]
    pii = [bool(kinds) for r in answered for kinds in r.get("pii") or []]
    drift = [r["drift"] for r in records if r.get("drift")]
    embedded = [d for d in drift if "embedding_far" in d]
    latencies = [r["latency_s"] for r in answered if r.get("latency_s") is not None]
    return {
        "requests": len(records), "answered": len(answered),
        "errors": sum(1 for r in records if (r.get("status") or 0) >= 500),
        "rate_limited": sum(1 for r in records if r.get("status") == 429),
        "client_errors": sum(1 for r in records if 400 <= (r.get("status") or 0) < 500 and r["status"] != 429),
        "guardrail": sum(1 for r in answered if r.get("guardrail")),
        "replies": len(replies), "refused": sum(replies), "pii": sum(pii),
        "drift_checked": len(drift), "drift_length_far": sum(1 for d in drift if d.get("length_far")),
        "drift_embedded": len(embedded), "drift_embedding_far": sum(1 for d in embedded if d["embedding_far"]),
        "prompt_tokens": sum(r.get("prompt_tokens") or 0 for r in answered),
        "completion_tokens": sum(r.get("completion_tokens") or 0 for r in answered),
        "latency_p50_s": float(np.percentile(latencies, 50)) if latencies else None,
        "latency_p95_s": float(np.percentile(latencies, 95)) if latencies else None,
    }


# rate name -> (events key, trials key)
RATES = {"error_rate": ("errors", "requests"), "guardrail_rate": ("guardrail", "answered"),
         "refusal_rate": ("refused", "replies"), "pii_rate": ("pii", "replies"),
         "drift_length_rate": ("drift_length_far", "drift_checked"),
         "drift_embedding_rate": ("drift_embedding_far", "drift_embedded")}


def _with_rates(counts: dict) -> dict:
    for name, (k, n) in RATES.items():
        counts[name] = counts[k] / counts[n] if counts[n] else None
    return counts


def evaluated_rates(run_dir: str | Path | None) -> dict:
    """Rates stored in a run's summary.json that served traffic is compared with."""
    if run_dir is None:
        return {}
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise UserError(f"--run {run_dir}: no summary.json (give the run directory that was served)")
    safety = json.loads(path.read_text()).get("safety") or {}
    return {"refusal_rate": safety["over_refusal_rate"]} if "over_refusal_rate" in safety else {}


def summarize(path: str | Path, run_dir: str | Path | None = None, window_seconds: float = 3600.0,
              thresholds: Thresholds | None = None) -> dict:
    """Windows of `window_seconds` from the first record, their counts and rates, the baselines and alerts."""
    thresholds = thresholds or Thresholds()
    records, bad = read_records(path)
    if not records:
        return {"log": str(path), "windows": [], "total": None, "alerts": [], "unreadable_lines": bad}
    start = records[0]["time"]
    grouped: dict[int, list[dict]] = {}
    for record in records:
        grouped.setdefault(int((record["time"] - start) // window_seconds), []).append(record)
    windows = [{"start": start + index * window_seconds, **_with_rates(_counts(rs))}
               for index, rs in sorted(grouped.items())]
    baselines = _baselines(windows, evaluated_rates(run_dir), thresholds)
    return {"log": str(path), "window_seconds": window_seconds, "thresholds": asdict(thresholds),
            "baselines": baselines, "windows": windows, "total": _with_rates(_counts(records)),
            "alerts": [alert for w in windows for alert in _alerts(w, baselines, thresholds)],
            "unreadable_lines": bad}


def _baselines(windows: list[dict], evaluated: dict, thresholds: Thresholds) -> dict:
    first = windows[0]
    baselines = {}
    for name in ("refusal_rate", "guardrail_rate"):
        if name in evaluated:
            baselines[name] = {"rate": evaluated[name], "source": "run summary.json (safety evaluation)"}
        elif first[name] is not None and first[RATES[name][1]] >= thresholds.min_count:
            baselines[name] = {"rate": first[name], "source": "first window of the log"}
    baselines["drift_length_rate"] = {"rate": EXPECTED_FAR_SHARE["length"], "source": "by construction"}
    baselines["drift_embedding_rate"] = {"rate": EXPECTED_FAR_SHARE["embedding"], "source": "by construction"}
    return baselines


def _alerts(window: dict, baselines: dict, thresholds: Thresholds) -> list[dict]:
    alerts = []
    for name, (k, n) in RATES.items():
        if window[k] == 0:
            continue
        low, high = wilson(window[k], window[n])
        if name == "pii_rate":  # any leak counts, however quiet the window
            limit, why = thresholds.max_pii_rate, f"above the ceiling {thresholds.max_pii_rate:g}"
            fires = window[name] > limit
        elif window[n] < thresholds.min_count:
            continue
        elif name == "error_rate":
            limit, why = thresholds.max_error_rate, f"surely above the ceiling {thresholds.max_error_rate:g}"
            fires = low > limit
        elif name in baselines:
            base = max(baselines[name]["rate"], thresholds.min_baseline)
            limit = thresholds.factor * base
            why = f"surely above {thresholds.factor:g} x the baseline {base:.3f} ({baselines[name]['source']})"
            fires = low > limit
        else:
            continue
        if fires:
            alerts.append({"window_start": window["start"], "rate": name, "value": window[name],
                           "ci95": [low, high], "events": window[k], "of": window[n], "limit": limit,
                           "why": why})
    return alerts


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def print_monitor(summary: dict, console) -> None:
    """The windows as a table, then the baselines and the alerts."""
    import datetime

    from rich.table import Table

    def when(t: float) -> str:
        return datetime.datetime.fromtimestamp(t).strftime("%d %H:%M")

    def seconds(value) -> str:
        return "-" if value is None else f"{value:.2f}"

    table = Table(title=f"{summary['log']}: {len(summary['windows'])} window(s) of "
                        f"{summary.get('window_seconds', 0):g} s", box=None, padding=(0, 1), header_style="bold underline")
    for column in ("from", "req", "4xx/429/5xx", "guard", "refusal", "PII", "drift len/emb", "p50/p95 s"):
        table.add_column(column, justify="left" if column == "from" else "right", no_wrap=True)
    for w in summary["windows"]:
        table.add_row(when(w["start"]), str(w["requests"]), f"{w['client_errors']}/{w['rate_limited']}/{w['errors']}",
                      _pct(w["guardrail_rate"]), _pct(w["refusal_rate"]), str(w["pii"]),
                      f"{_pct(w['drift_length_rate'])}/{_pct(w['drift_embedding_rate'])}",
                      f"{seconds(w['latency_p50_s'])}/{seconds(w['latency_p95_s'])}")
    console.print(table)
    for name, base in summary.get("baselines", {}).items():
        console.print(f"baseline {name}: {base['rate']:.3f} ({base['source']})")
    if summary["unreadable_lines"]:
        console.print(f"[yellow]{len(summary['unreadable_lines'])} unreadable line(s), first "
                      f"{summary['unreadable_lines'][0]}[/yellow]")
    if not summary["alerts"]:
        console.print("[green]no alerts[/green]")
    for alert in summary["alerts"]:
        console.print(f"[bold red]ALERT[/bold red] {when(alert['window_start'])} {alert['rate']} "
                      f"{_pct(alert['value'])} ({alert['events']}/{alert['of']}, 95% CI {_pct(alert['ci95'][0])}.."
                      f"{_pct(alert['ci95'][1])}): {alert['why']}")
