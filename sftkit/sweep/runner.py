"""`sftkit sweep` end to end: fix the splits, build the trials (the base config first), successive halving on
validation, then choose honestly (sftkit/sweep/select.py), and write the outputs. Every phase is recorded in
OUTPUT_DIR/sweep.json as it completes, so running the same command again after an interruption (even
`kill -9`) continues where it stopped; a finished sweep only prints its results again.
"""

from __future__ import annotations

import fcntl
import shutil
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

from sftkit.errors import UserError
from sftkit.paths import check_output
from sftkit.sweep.config import SweepPlan
from sftkit.sweep.halving import Halving
from sftkit.sweep.leaderboard import LiveBoard, best_config_yaml, leaderboard_table, print_results
from sftkit.sweep.leaderboard import write_comparison_page
from sftkit.sweep.objective import Objective
from sftkit.sweep.select import Selection
from sftkit.sweep.splits import check_splits, read_test, write_splits
from sftkit.sweep.state import SweepState
from sftkit.sweep.trial import Trial, TrialBuilder


@contextmanager
def exclusive(out_dir: Path):
    """Hold OUTPUT_DIR/.lock: two sweeps writing one sweep.json would corrupt it. The lock dies with the
    process, so a killed sweep never leaves a stale one."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another sftkit sweep is running in {out_dir}: wait for it, or use another "
                            "output_dir") from None
        yield


def build_trials(plan: SweepPlan, state: SweepState, builder: TrialBuilder, say) -> list[Trial]:
    """The base config (`base`) and one trial per point of the space (`t01`, ...), in that order; a point whose
    resolved config equals an earlier trial's (the same hash) is the same run and is not trained twice."""
    trials, seen = [], {}
    for i, settings in enumerate([{}] + plan.params):
        trial = builder.build("base" if i == 0 else f"t{i:02d}", settings)
        if trial.id in seen:
            say(f"{trial.name} has the config of {seen[trial.id]} ({trial.id}); it is not trained twice")
            continue
        seen[trial.id] = trial.name
        trials.append(trial)
        state.add_trial(trial.name, trial.id, str(trial.run_dir), trial.params, trial.total_steps)
    state.save()
    return trials


def run_sweep(plan: SweepPlan, quiet: bool = False, console: Console | None = None) -> dict:
    """Run (or continue) the sweep `plan` and return sweep.json's content."""
    console = console or Console(stderr=True)
    say = (lambda text: None) if quiet else console.print
    out, config = plan.out_dir, plan.config
    check_output(out, "output_dir", "dir")
    with exclusive(out):
        state = SweepState.open(out, plan.fingerprint(), config.objective, plan.minimize)
        if state.data["status"] == "complete":
            say(f"{out} holds a finished sweep; its results:")
        else:
            _search_and_select(plan, state, say, console, quiet)
        if not quiet:
            console.print(leaderboard_table(state))
            print_results(state, console)
        return state.data


def _search_and_select(plan: SweepPlan, state: SweepState, say, console: Console, quiet: bool) -> None:
    out, config, base = plan.out_dir, plan.config, plan.base
    if state.data["data"] is None or not check_splits(state.data["data"]):
        state.data["data"] = write_splits(base, out)
        state.save()
    builder = TrialBuilder(plan.base_raw, config.budget, out)
    trials = build_trials(plan, state, builder, say)
    objective = Objective(config.objective, out, base.eval.max_new_tokens, base.train.num_threads)
    _quiet_library_progress()
    with LiveBoard(state, console, enabled=not quiet) as board:
        Halving(state, trials, objective, config.rungs, config.eta, config.budget.wall_seconds,
                on_event=board.event).run()
        selection = Selection(state, trials, builder, objective, on_event=board.event)
        winner = selection.fix_winner()
        selection.complete("best", winner)
        selection.complete("base", trials[0])
        if config.reproduce:
            selection.reproduce(winner, config.reproduce_seed if config.reproduce_seed is not None
                                else base.train.seed + 1)
        if config.test:
            selection.score_test(read_test(base, out), base.eval.metric, base.eval.max_new_tokens,
                                 base.train.num_threads)
    best = state.data["best"]
    header = (f"The best config of `sftkit sweep` in {out}: trial {best['name']} ({best['id']}), "
              f"{config.objective} {best['objective']:.4f} on validation.\nTrain it: sftkit train {out / 'best.yaml'}")
    budget_length = config.budget.max_steps or config.budget.num_tokens
    total_steps = state.trial(best["name"])["total_steps"] if budget_length else None
    (out / "best.yaml").write_text(best_config_yaml(plan.base_raw, best["params"], total_steps, out, header))
    state.data["best"]["config"] = str(out / "best.yaml")
    state.data["comparison_page"] = write_comparison_page(state)
    state.data["status"] = "complete"
    state.save()
    if not config.keep_checkpoints:
        for record in state.trials + [r for r in (state.data.get("reproduction"),) if r]:
            shutil.rmtree(Path(record["run_dir"]) / "checkpoints", ignore_errors=True)


def _quiet_library_progress() -> None:
    """Trials load and save models many times; the libraries' progress bars would scroll the leaderboard away."""
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    disable_progress_bars()
