"""What a sweep shows and leaves behind: the live terminal leaderboard (rich), the final tables, the best config
as YAML ready for `sftkit train` (OUTPUT_DIR/best.yaml), and the comparison page of the trial run directories
(the HTML report's, when sftkit.report provides it). sweep.json itself is the state (sftkit/sweep/state.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from sftkit.sweep.state import SweepState
from sftkit.sweep.trial import set_dotted

STATUS_STYLE = {"running": "cyan", "finished": "green", "stopped_early": "yellow", "failed": "red"}


def _number(value, minimize: bool) -> str:
    return "" if value is None else f"{value:.4f}" if minimize else f"{value:.3f}"


def _short(key: str) -> str:
    return key.split(".")[-1]


def leaderboard_table(state: SweepState) -> Table:
    """Trials best first: highest rung reached, then objective there; a column per rung (objective at step)."""
    data, minimize = state.data, state.data["minimize"]
    keys = list(dict.fromkeys(k for t in state.trials for k in t["params"]))
    table = Table(title=f"sftkit sweep: {data['objective']} on validation ({'lower' if minimize else 'higher'} "
                        "is better)", title_justify="left")
    table.add_column("trial")
    for key in keys:
        table.add_column(_short(key), justify="right")
    for k, rung in enumerate(data["rungs"]):
        table.add_column(f"rung {k + 1} ({rung['fraction']:.0%})", justify="right")
    table.add_column("status")

    def rank(item):
        index, record = item
        rows = [r for r in record["history"] if not r.get("error")]
        if not rows:
            return (1, 0, 0.0, index)
        sign = 1 if minimize else -1
        return (0, -rows[-1]["rung"], sign * rows[-1]["objective"], index)

    for _, record in sorted(enumerate(state.trials), key=rank):
        name = record["name"] + (" *" if record["name"] == data.get("winner") else "")
        cells = [_value_text(record["params"].get(k)) for k in keys]
        for k in range(len(data["rungs"])):
            row = next((r for r in record["history"] if r["rung"] == k), None)
            cells.append("" if row is None else "failed" if row.get("error")
                         else f"{_number(row['objective'], minimize)} @{row['step']}")
        status = record["status"] + (" (own early stop)" if record.get("early_stopped") else "")
        table.add_row(name, *cells, Text(status, style=STATUS_STYLE.get(record["status"], "")))
    return table


def _value_text(value) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


class LiveBoard:
    """The leaderboard, redrawn while trials train, with a line for the trial in progress (read from its
    metrics.jsonl, so training itself prints nothing)."""

    def __init__(self, state: SweepState, console: Console | None, enabled: bool = True):
        self.state, self.console, self.enabled = state, console or Console(stderr=True), enabled
        self.current: dict | None = None
        self.live = None

    def __enter__(self) -> LiveBoard:
        if self.enabled:
            self.live = Live(self, console=self.console, refresh_per_second=1, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.current = None
            self.live.__exit__(*exc)

    def __rich__(self):
        try:
            parts = [leaderboard_table(self.state)]
        except RuntimeError:  # the state changed under the redraw thread; the next refresh shows it
            return Text("")
        if self.current:
            parts.append(Text(self._progress(), style="dim"))
        return Group(*parts)

    def _progress(self) -> str:
        c = self.current
        where = f"rung {c['rung'] + 1}, " if c.get("rung") is not None else ""
        text = f"training {c['name']} ({where}to step {c['step']})"
        last = _last_row(Path(c["run_dir"]) / "metrics.jsonl")
        if last and "train_loss" in last:
            text += f": step {last['step']}, train loss {last['train_loss']:.4f}"
        return text

    def event(self, kind: str, name: str | None, row: dict) -> None:
        if not self.enabled:
            return
        if kind == "start":
            self.current = {"name": name, **row}
        elif kind in ("rung", "final"):
            self.current = None
            what = f"rung {row['rung'] + 1}" if kind == "rung" else "to the end"
            result = row.get("error") or (f"{self.state.data['objective']} "
                                              f"{_number(row['objective'], self.state.data['minimize'])}")
            self.console.print(f"{name} {what}: {result}")
        elif kind == "cut":
            self.console.print(f"after rung {row['rung'] + 1}: {', '.join(row['kept'])} continue")
        if self.live is not None:
            self.live.refresh()


def _last_row(path: Path) -> dict | None:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


def print_results(state: SweepState, console: Console) -> None:
    """The held-out comparison and the reproduction, after the leaderboard."""
    data = state.data
    best, test, repro = data.get("best"), data.get("test"), data.get("reproduction")
    if best:
        console.print(f"winner {best['name']} ({best['id']}): {data['objective']} {best['objective']:.4f} on "
                      f"validation; config in {Path(state.path).parent / 'best.yaml'}")
    if test:
        table = Table(title=f"held-out test split ({test.get('n')} examples, {test['metric']}), scored once",
                      title_justify="left")
        for column in ("model", "value", "95% CI"):
            table.add_column(column, justify="left" if column == "model" else "right")
        for label, model in test["models"].items():
            table.add_row(label, f"{model['value']:.3f}", f"[{model['ci_low']:.3f}, {model['ci_high']:.3f}]")
        gain = test["gain_over_base"]
        table.add_row("winner - base (paired)", f"{gain['abs']:+.3f}", f"[{gain['ci_low']:+.3f}, {gain['ci_high']:+.3f}]")
        spread = test.get("reproduction_minus_winner")
        if spread:
            table.add_row("second seed - winner (paired)", f"{spread['abs']:+.3f}",
                          f"[{spread['ci_low']:+.3f}, {spread['ci_high']:+.3f}]")
        console.print(table)
    if repro and not repro.get("error"):
        console.print(f"second seed {repro['seed']}: {data['objective']} {repro['objective']:.4f} (winner "
                      f"{best['objective']:.4f}, spread {repro['objective_spread']:.4f})")


def best_config_yaml(base_raw: dict, params: dict, total_steps: int | None, sweep_dir: Path, header: str) -> str:
    """The base config as written, with the winning settings (and the budget's length, when the budget set
    one), and its own output_dir: ready for `sftkit train`."""
    raw = json.loads(json.dumps(base_raw))
    for key, value in params.items():
        set_dotted(raw, key, value)
    if total_steps is not None:
        raw.setdefault("train", {})["max_steps"] = total_steps
    raw["output_dir"] = str(Path(sweep_dir) / "best-run")
    return "".join(f"# {line}\n" for line in header.splitlines()) + yaml.safe_dump(raw, sort_keys=False)


def write_comparison_page(state: SweepState) -> str | None:
    """The HTML report's comparison page of the winner, the base, the reproduction and the trials, as
    OUTPUT_DIR/comparison.html; None when this sftkit has no report package (`sftkit.report`)."""
    try:
        from sftkit.report.compare_runs import write_comparison
    except ImportError:
        return None
    names = [state.data[k]["run_dir"] for k in ("best", "base", "reproduction") if state.data.get(k)]
    names += [t["run_dir"] for t in state.trials if t["run_dir"] not in names]
    runs = [d for d in names if (Path(d) / "metrics.jsonl").is_file()]
    return str(write_comparison(runs, Path(state.path).parent / "comparison.html", title="sftkit sweep"))
