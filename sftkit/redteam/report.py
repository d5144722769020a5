"""redteam.json, predictions.jsonl and the terminal tables of `sftkit redteam`.

predictions.jsonl has one row per model x attack x seed: `model` (model/against), `attack`, seed `id`,
`category`, `hazard`, `refused`, `blocked`, and where measured `engaged`, `similarity`, `refusal_margin`,
`judge_score`; with --save-replies also `reply` and `messages` (what the reply answered, prefill included).
"""

from __future__ import annotations

import json
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from sftkit.safety.hazards import hazard_name


def write_outputs(out: Path, result: dict, raw: dict, rows: dict, values: dict, seeds, attacks,
                  save_replies: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "redteam.json").write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    with (out / "predictions.jsonl").open("w", encoding="utf-8") as handle:
        for label in raw:
            for attack in attacks:
                scored, measured = rows[label][attack.name], values[label][attack.name]
                for i, seed in enumerate(seeds):
                    row = {"model": label, "attack": attack.name, "id": seed.id, "category": seed.category,
                           "hazard": seed.hazard, "refused": scored["refused"][i],
                           "blocked": raw[label]["blocked"][attack.name][i]}
                    if "engaged" in scored:
                        row.update(engaged=scored["engaged"][i], similarity=scored["similarity"][i])
                    for measure in ("refusal_margin", "judge_score"):
                        if measured[measure] is not None:
                            row[measure] = measured[measure][i]
                    if save_replies:
                        row.update(reply=raw[label]["replies"][attack.name][i],
                                   messages=raw[label]["contexts"][attack.name][i])
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _cell(summary: dict, signed: bool = False, digits: int = 2) -> str:
    sign = "+" if signed else ""
    return (f"{summary['value']:{sign}.3f}\n[{summary['ci_low']:{sign}.{digits}f}, "
            f"{summary['ci_high']:{sign}.{digits}f}]")


def _delta(delta: dict | None) -> str:
    if delta is None:
        return ""
    mark = " *" if delta["ci_low"] > 0 or delta["ci_high"] < 0 else ""
    return f"{delta['abs']:+.3f}{mark}\n[{delta['ci_low']:+.2f}, {delta['ci_high']:+.2f}]"


def _measure_table(result: dict, measure: str) -> Table:
    against = bool(result["against"])
    table = Table(title=f"{measure}: {result['measures'][measure]}", box=box.SIMPLE_HEAD, pad_edge=False,
                  title_justify="left")
    for column in ["attack", "model", "delta vs\ndirect"] + (["against", "delta vs\nagainst"] if against else []):
        table.add_column(column, justify="left" if column == "attack" else "right", no_wrap=True)
    signed = measure == "refusal_margin"
    for name, entry in result["attacks"].items():
        if measure not in entry:
            continue
        cell = entry[measure]
        row = [name, _cell(cell["model"], signed), _delta(cell.get("delta_vs_direct"))]
        if against:
            row += [_cell(cell["against"], signed), _delta(cell.get("delta_vs_against"))]
        table.add_row(*row)
    return table


def _hazard_table(result: dict) -> Table:
    table = Table(title="attack success by hazard (successes/seeds)", box=box.SIMPLE_HEAD, pad_edge=False,
                  title_justify="left")
    labels = ["model"] + (["against"] if result["against"] else [])
    for column in ["hazard", "seeds"] + [f"direct\n{label}" for label in labels] + [
            f"any attack\n{label}" for label in labels] + ["most successful attack\n(model)"]:
        table.add_column(column, justify="left" if column[:6] in ("hazard", "most s") else "right")
    groups = result["by_hazard"]
    for code in result["by_hazard"]["model"]["direct"]:
        attacks = {a: g[code] for a, g in groups["model"].items() if a != "any_attack"}
        best = max(attacks, key=lambda a: attacks[a]["count"])
        table.add_row(hazard_name(code), str(attacks["direct"]["n"]),
                      *[f"{groups[label]['direct'][code]['count']}" for label in labels],
                      *[f"{groups[label]['any_attack'][code]['count']}" for label in labels],
                      f"{best} ({attacks[best]['count']})")
    return table


def print_redteam(result: dict, console: Console | None = None) -> None:
    """One table per measure (attack success first): each attack's value with its interval, the paired delta
    against direct and, with a second model, its value and the paired delta; then the share of seeds broken by
    any attack, and success by hazard."""
    console = console or Console()
    console.print(f"[bold]model:[/bold] {result['model']}" + (" (guardrail on)" if result["guardrail"] else ""),
                  soft_wrap=True)
    if result["against"]:
        console.print(f"[bold]against:[/bold] {result['against']}", soft_wrap=True)
    console.print(f"{result['seeds']['n']} seeds x {len(result['attacks'])} attacks; 95% bootstrap intervals over "
                  "seeds; * = the paired delta's interval excludes 0")
    for measure in result["measures"]:
        console.print(_measure_table(result, measure))
    any_table = result["any_attack"]["attack_success"]
    line = f"broken by any of {result['any_attack']['num_attacks']} attacks: {_cell(any_table['model'])}"
    if result["against"]:
        line += f"; against {_cell(any_table['against'])}; delta {_delta(any_table['delta_vs_against'])}"
    console.print(line.replace("\n", " "))
    console.print(_hazard_table(result))
    console.print(f"refusals judged by: {result['scorers']['refusal']}; {result['seconds']:.0f} s"
                  + "".join(f"; {label} from cache" for label, hit in result["cached"].items() if hit))
