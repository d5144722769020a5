"""Synchronous successive halving over a sweep's trials.

Rungs sit at fixed fractions eta^-(R-1), ..., 1/eta, 1 of each trial's budget (R = `rungs`). Every trial still
in the search trains to the rung's step, resuming its own checkpoint; when all have, the best
max(1, entrants // eta) continue and the others stop (`stopped_early`). One trial trains at a time, in the
order of the trials, so the same sweep always takes the same decisions. A trial whose own early stopping
ended its training keeps its final result at later rungs without training. With `budget.wall_seconds`, no
trial's rung starts once the training time is spent, and the search ends at the rung it reached.
"""

from __future__ import annotations

from collections.abc import Callable

from sftkit.sweep.objective import Objective
from sftkit.sweep.state import SweepState
from sftkit.sweep.trial import Trial, advance


def rung_fractions(rungs: int, eta: int) -> list[float]:
    return [float(eta) ** -(rungs - 1 - k) for k in range(rungs)]


def rung_step(total_steps: int, fraction: float) -> int:
    """The step at which a trial of `total_steps` is compared at the rung at `fraction` (at least 1)."""
    return total_steps if fraction >= 1 else max(1, round(total_steps * fraction))


def num_kept(num_entrants: int, eta: int) -> int:
    return max(1, num_entrants // eta)


class Halving:
    """Runs the rungs, recording every result in the sweep state as it comes (so a killed sweep resumes at
    the trial and rung it was in). `on_event(kind, trial_name, row)` lets the leaderboard follow."""

    def __init__(self, state: SweepState, trials: list[Trial], objective: Objective, rungs: int, eta: int,
                 wall_seconds: float | None = None, on_event: Callable | None = None):
        self.state, self.trials, self.objective = state, {t.name: t for t in trials}, objective
        self.fractions, self.eta, self.wall_seconds = rung_fractions(rungs, eta), eta, wall_seconds
        self.on_event = on_event or (lambda *_: None)

    def run(self) -> None:
        state = self.state
        if not state.data["rungs"]:
            state.data["rungs"] = [{"fraction": f, "entrants": None, "kept": None} for f in self.fractions]
            state.save()
        for k in range(len(self.fractions)):
            rung = state.data["rungs"][k]
            if rung["entrants"] is None:
                rung["entrants"] = [r["name"] for r in state.trials if r["status"] == "running"]
                state.save()
            for name in rung["entrants"]:
                if state.row(name, k) is None and not self._spent():
                    self._train(name, k)
            if self._spent() and any(state.row(n, k) is None for n in rung["entrants"]):
                state.data["budget_spent"] = True
                break
            if k < len(self.fractions) - 1:
                self._cut(k)
        self._close()

    def _spent(self) -> bool:
        return self.wall_seconds is not None and self.state.data["train_seconds"] >= self.wall_seconds

    def _train(self, name: str, k: int) -> None:
        trial, state = self.trials[name], self.state
        previous = state.row(name, k - 1) if k else None
        if previous is not None and previous.get("ended"):  # trained to its end already: carried, no training
            row = {**previous, "seconds": 0.0}
            row.pop("rung", None)
        else:
            step = rung_step(trial.total_steps, self.fractions[k])
            self.on_event("start", name, {"rung": k, "step": step, "run_dir": str(trial.run_dir)})
            row = self.objective.row(trial, advance(trial, step))
        state.record(name, k, row)
        self.on_event("rung", name, {"rung": k, **row})

    def _cut(self, k: int) -> None:
        """After rung k: the best continue, the others stop (or count as finished if they ended on their own)."""
        state, rung = self.state, self.state.data["rungs"][k]
        if rung["kept"] is not None:
            return
        ranked = state.ranked(k, rung["entrants"])
        rung["kept"] = ranked[:num_kept(len(rung["entrants"]), self.eta)]
        for name in rung["entrants"]:
            record = state.trial(name)
            if name not in rung["kept"] and record["status"] == "running":
                record["status"] = "finished" if state.row(name, k).get("ended") else "stopped_early"
        state.save()
        self.on_event("cut", None, {"rung": k, "kept": rung["kept"]})

    def _close(self) -> None:
        """The trials left in the search: `finished` when their training is over, else stopped by the budget."""
        for record in self.state.trials:
            if record["status"] == "running":
                last = record["history"][-1] if record["history"] else {}
                record["status"] = "finished" if last.get("ended") else "stopped_early"
        self.state.save()
