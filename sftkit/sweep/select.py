"""Choosing honestly: the winner is fixed on validation alone, and written to sweep.json before any test data is
read. Then the winner and the base config train to the end of their budgets (resuming where the search left
them), the winner trains again with a second seed, and only then is the held-out test split scored, once per
model: winner, base and reproduction, with the winner's gain over the base as a paired-bootstrap 95% interval
(the `sftkit compare` machinery) and the spread between the winner's two seeds.
"""

from __future__ import annotations

from collections.abc import Callable

from sftkit.errors import UserError
from sftkit.eval.metrics import paired_difference
from sftkit.sweep.objective import Objective
from sftkit.sweep.state import SweepState
from sftkit.sweep.trial import Trial, TrialBuilder, advance

PAIRED_SEED = 1234  # the seed `sftkit compare` resamples with


def choose_winner(state: SweepState) -> str:
    """The best trial of the highest rung any trial reached (ties: the earlier trial)."""
    for k in range(len(state.data["rungs"]) - 1, -1, -1):
        ranked = state.ranked(k, state.data["rungs"][k]["entrants"] or [])
        if ranked:
            return ranked[0]
    errors = [t["error"] for t in state.trials if t.get("error")]
    raise UserError(f"every trial failed, e.g. {errors[0] if errors else 'no result'}; fix the base config or "
                    "the search space and run the sweep again with a new output_dir")


class Selection:
    """The phases after the search, each recorded in the state as it completes."""

    def __init__(self, state: SweepState, trials: list[Trial], builder: TrialBuilder, objective: Objective,
                 on_event: Callable | None = None):
        self.state, self.trials, self.builder, self.objective = state, {t.name: t for t in trials}, builder, objective
        self.on_event = on_event or (lambda *_: None)

    def fix_winner(self) -> Trial:
        if self.state.data["winner"] is None:
            self.state.data["winner"] = choose_winner(self.state)
            self.state.save()  # before any test data is read: the choice cannot depend on it
        return self.trials[self.state.data["winner"]]

    def complete(self, key: str, trial: Trial) -> dict:
        """`state[key]` (best, base): the trial trained to the end of its budget, resuming its checkpoint if the
        search stopped it, with its final objective."""
        done = self.state.data.get(key)
        same = [self.state.data[k] for k in ("best", "base") if k != key and self.state.data.get(k)]
        if done is None and same and same[0]["name"] == trial.name:  # the base won: one run serves both
            done = self.state.data[key] = dict(same[0])
            self.state.save()
        if done is None:
            record = self.state.trial(trial.name)
            last = record["history"][-1] if record["history"] else {}
            row = last if last.get("ended") else self._train(trial)
            done = {"name": trial.name, "id": trial.id, "run_dir": str(trial.run_dir), "params": trial.params,
                    "status_in_search": record["status"], "trained_after_search": not last.get("ended"), **row}
            done.pop("rung", None)
            if trial.name == self.state.data["winner"] and not row.get("error"):
                record["status"] = "finished"
            self.state.data[key] = done
            self.state.save()
        if done.get("error"):
            raise UserError(f"{trial.name} failed when trained to the end of its budget: {done['error']}")
        return done

    def reproduce(self, winner: Trial, seed: int) -> dict:
        """The winner's config with `train.seed = seed` (same splits; a new initialisation, data order and
        dropout), trained to the end: its objective beside the winner's."""
        done = self.state.data.get("reproduction")
        if done is None:
            trial = self.builder.build("reproduction", {**winner.params, "train.seed": seed})
            row = self._train(trial)
            done = {"name": trial.name, "id": trial.id, "run_dir": str(trial.run_dir), "seed": seed, **row}
            best = self.state.data["best"]
            if not row.get("error"):
                done["objective_spread"] = abs(row["objective"] - best["objective"])
            self.state.data["reproduction"] = done
            self.state.save()
        return done

    def _train(self, trial: Trial) -> dict:
        self.on_event("start", trial.name, {"rung": None, "step": trial.total_steps, "run_dir": str(trial.run_dir)})
        row = self.objective.row(trial, advance(trial, trial.total_steps))
        self.on_event("final", trial.name, row)
        return row

    def score_test(self, test_path, metric: str, max_new_tokens: int, num_threads: int | None) -> dict:
        """The test split scored once per model (winner, base, reproduction), the winner's paired gain over the
        base, and the reproduction's paired difference from the winner (the seed spread)."""
        from sftkit.eval.evaluator import EvalSettings, Evaluator
        from sftkit.eval.tasks import load_task

        data = self.state.data
        test = data["test"] or {"path": str(test_path), "metric": metric, "models": {}}
        runs = {"winner": data["best"], "base": data["base"], "reproduction": data.get("reproduction")}
        task = None
        for label, run in runs.items():
            if run is None or run.get("error") or label in test["models"]:
                continue
            same = next((m for m in test["models"].values() if m["run_dir"] == run["run_dir"]), None)
            if same is None:
                task = task or load_task(str(test_path))
                test["n"] = len(task.items)
                settings = EvalSettings(max_new_tokens=max_new_tokens, metric=metric, num_threads=num_threads)
                evaluator = Evaluator(run["run_dir"], settings, use_cache=False)
                result = evaluator.run(task)
                evaluator.release()
                same = {"run_dir": run["run_dir"], **result.summary()[metric], "values": result.values[metric],
                        "seconds": result.info["seconds"]}
            test["models"][label] = same
            data["test"] = test
            self.state.save()
        models = test["models"]
        test["gain_over_base"] = paired_difference(models["winner"]["values"], models["base"]["values"],
                                                   seed=PAIRED_SEED)
        if "reproduction" in models:
            test["reproduction_minus_winner"] = paired_difference(
                models["reproduction"]["values"], models["winner"]["values"], seed=PAIRED_SEED)
        data["test"] = test
        self.state.save()
        return test
