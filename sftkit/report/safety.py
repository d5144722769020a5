"""The safety section: `sftkit safety` before/after with intervals, and the red-team attack success rates.

redteam.json (sftkit/redteam) holds `attacks: {ATTACK: {RATE: estimate, ..., "against": {RATE: estimate},
"delta*": {RATE: paired difference}}}` where an estimate is `{value, ci_low, ci_high, n}`; optional `any_attack`
(the share of seeds broken by any attack). Every rate found is shown; the first is the one charted.
"""

from __future__ import annotations

from dataclasses import dataclass

from sftkit.report.charts import MUTED, PALETTE, Interval, interval_chart
from sftkit.report.figures import estimate_text, is_estimate, value_of
from sftkit.report.html import Html, join, note, table, tag

SAFETY_WORDS = {"refusal_rate": "refusal rate, harmful requests (higher = safer)",
                "over_refusal_rate": "over-refusal rate, benign requests (lower = better)",
                "hhh_accuracy": "HHH alignment accuracy (higher = better)"}


@dataclass
class AttackRow:
    attack: str
    rate_name: str
    rate: dict
    before: dict | None
    delta: dict | None
    others: dict[str, dict]


def attack_rows(redteam: dict) -> list[AttackRow]:
    """One row per attack: its first rate, the same rate for the model compared with and their difference."""
    rows = []
    for attack, entry in (redteam.get("attacks") or {}).items():
        if not isinstance(entry, dict):
            continue
        rates = {k: v for k, v in entry.items() if is_estimate(v)}
        if not rates:
            continue
        name = next(iter(rates))
        against = entry.get("against") if isinstance(entry.get("against"), dict) else {}
        deltas = [v if is_estimate(v) else v.get(name) for k, v in entry.items()
                  if k.startswith("delta") and isinstance(v, dict)]
        delta = next((d for d in deltas if is_estimate(d)), None)
        rows.append(AttackRow(attack, name, rates[name], against.get(name) if is_estimate(against.get(name)) else None,
                              delta, {k: v for k, v in rates.items() if k != name}))
    return rows


def safety_part(safety: dict) -> Html:
    metrics = safety.get("metrics") or {}
    intervals, rows = [], []
    for name, entry in metrics.items():
        words = SAFETY_WORDS.get(name, name)
        if "against" in entry:
            intervals.append(Interval(f"{name.replace('_', ' ')}: before", value_of(entry["against"]),
                                      entry["against"]["ci_low"], entry["against"]["ci_high"],
                                      estimate_text(entry["against"]), MUTED))
        after = entry["model"]
        intervals.append(Interval(f"{name.replace('_', ' ')}: after", value_of(after), after["ci_low"],
                                  after["ci_high"], estimate_text(after), PALETTE[0]))
        rows.append([words, estimate_text(entry["against"]) if "against" in entry else "-",
                     estimate_text(entry["model"]),
                     estimate_text(entry["delta"], sign=True) if "delta" in entry else "-"])
    parts = [tag("p", f"model: {safety.get('model')}; compared with: {safety.get('against') or 'nothing'}; refusals "
                      f"judged by {safety.get('classifier')}.", class_="sub")]
    if intervals:
        parts.append(interval_chart("safety before (grey) and after fine-tuning, 95% intervals", intervals,
                                    domain=(0.0, 1.0)))
    parts.append(table(["measure", "before", "after", "after - before (paired)"], rows, numeric={1, 2, 3}))
    return join(parts)


def redteam_part(redteam: dict) -> Html:
    rows = attack_rows(redteam)
    if not rows:
        return note("redteam/redteam.json holds no attack rates.")
    name = rows[0].rate_name.replace("_", " ")
    intervals = []
    for r in rows:
        if r.before:
            intervals.append(Interval(f"{r.attack}: before", value_of(r.before), r.before["ci_low"],
                                      r.before["ci_high"], estimate_text(r.before), MUTED))
        intervals.append(Interval(r.attack, value_of(r.rate), r.rate["ci_low"], r.rate["ci_high"],
                                  estimate_text(r.rate), PALETTE[1]))
    other_names = sorted({k for r in rows for k in r.others})
    headers = ["attack", f"{name}", "before", "delta (paired)", *[k.replace("_", " ") for k in other_names]]
    table_rows = [[r.attack, estimate_text(r.rate), estimate_text(r.before) if r.before else "-",
                   estimate_text(r.delta, sign=True) if r.delta else "-",
                   *[estimate_text(r.others[k]) if k in r.others else "-" for k in other_names]] for r in rows]
    flagged = ["flagged" if r.delta and r.delta.get("ci_low") is not None and r.delta["ci_low"] > 0 else None
               for r in rows]
    parts = [tag("p", f"model: {redteam.get('model')}; compared with: {redteam.get('against') or 'nothing'}. "
                      "A non-refusal rate is an upper bound on attack success (refusal matching over-counts "
                      "success).", class_="sub"),
             interval_chart(f"red-team: {name} per attack, 95% intervals", intervals, domain=(0.0, 1.0)),
             table(headers, table_rows, row_classes=flagged, numeric=set(range(1, len(headers))))]
    if is_estimate(redteam.get("any_attack")):
        parts.append(tag("p", f"Seeds broken by any of the {len(rows)} attacks: "
                              f"{estimate_text(redteam['any_attack'])}."))
    return join(parts)
