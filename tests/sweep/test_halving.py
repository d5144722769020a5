"""Successive halving, with the training replaced by a planted loss surface: who trains to which step, who
stops, and that a resumed sweep trains nothing it already recorded."""

from __future__ import annotations

import pytest

from sftkit.recipes.sft_config import SFTConfig
from sftkit.sweep import halving
from sftkit.sweep.halving import Halving, num_kept, rung_fractions, rung_step
from sftkit.sweep.objective import Objective
from sftkit.sweep.select import choose_winner
from sftkit.sweep.state import SweepState
from sftkit.sweep.trial import Trial


def test_rung_arithmetic():
    assert rung_fractions(3, 3) == [1 / 9, 1 / 3, 1.0]
    assert [rung_step(27, f) for f in rung_fractions(3, 3)] == [3, 9, 27]
    assert [rung_step(40, f) for f in rung_fractions(2, 3)] == [13, 40]
    assert rung_step(4, 1 / 9) == 1 and rung_step(5, 1.0) == 5
    assert [num_kept(n, 3) for n in (1, 2, 3, 8, 9)] == [1, 1, 1, 2, 3]


class Planted:
    """Validation loss `quality + 1 / step` for each trial; `calls` records every (trial, stop step)."""

    def __init__(self, quality: dict, total: int, fail: set = (), stop_early: dict | None = None):
        self.quality, self.total, self.fail, self.stop_early = quality, total, set(fail), stop_early or {}
        self.calls: list[tuple[str, int]] = []

    def __call__(self, trial: Trial, step: int) -> dict:
        self.calls.append((trial.name, step))
        if trial.name in self.fail:
            return {"error": "non-finite loss at step 1", "seconds": 1.0}
        end = self.stop_early.get(trial.name, self.total)
        loss = self.quality[trial.name] + 1 / min(step, end)
        if step < end:
            return {"paused_at_step": step, "steps": step, "val_loss": loss, "seconds": 1.0}
        return {"steps": end, "best_val_loss": loss, "early_stopped": end < self.total, "seconds": 1.0}


def sweep(tmp_path, planted: Planted, rungs=3, eta=3, wall_seconds=None) -> SweepState:
    state = SweepState.open(tmp_path, {"planted": True}, "val_loss", True)
    trials = []
    for name in planted.quality:
        config = SFTConfig.model_validate({"train": {"max_steps": planted.total},
                                           "output_dir": str(tmp_path / "trials" / name)})
        trials.append(Trial(name, {}, config))
        state.add_trial(name, name, config.output_dir, {}, planted.total)
    Halving(state, trials, Objective("val_loss", tmp_path, 8), rungs, eta, wall_seconds).run()
    return state


@pytest.fixture
def nine():
    return {f"t{i}": q for i, q in enumerate([0.5, 0.2, 0.9, 0.1, 0.7, 0.3, 0.8, 0.6, 0.4])}


def test_the_best_third_continue_at_each_rung(tmp_path, monkeypatch, nine):
    planted = Planted(nine, total=27)
    monkeypatch.setattr(halving, "advance", planted)
    state = sweep(tmp_path, planted)
    assert planted.calls == [(n, 3) for n in nine] + [("t1", 9), ("t3", 9), ("t5", 9), ("t3", 27)]
    assert [r["kept"] for r in state.data["rungs"]] == [["t3", "t1", "t5"], ["t3"], None]
    status = {t["name"]: (t["status"], t["rung"], t["steps"]) for t in state.trials}
    assert status["t3"] == ("finished", 2, 27)
    assert status["t1"] == status["t5"] == ("stopped_early", 1, 9)
    assert {n for n, s in status.items() if s == ("stopped_early", 0, 3)} == {"t0", "t2", "t4", "t6", "t7", "t8"}
    assert choose_winner(state) == "t3"
    assert state.trial("t3")["objective"] == pytest.approx(0.1 + 1 / 27, abs=0)


def test_failed_trials_never_continue_and_own_early_stop_is_carried(tmp_path, monkeypatch):
    planted = Planted({"a": 0.3, "b": 0.1, "c": 0.2, "d": 0.5}, total=8, fail={"b"}, stop_early={"c": 2})
    monkeypatch.setattr(halving, "advance", planted)
    state = sweep(tmp_path, planted, rungs=3, eta=2)  # rungs at 2, 4, 8
    assert state.trial("b")["status"] == "failed" and "non-finite" in state.trial("b")["error"]
    # c stopped itself at step 2 with the best loss: it is kept without training again, and finishes
    assert planted.calls == [("a", 2), ("b", 2), ("c", 2), ("d", 2), ("a", 4), ("a", 8)]
    assert state.data["rungs"][0]["kept"] == ["c", "a"] and state.data["rungs"][1]["kept"] == ["a"]
    assert [r["seconds"] for r in state.trial("c")["history"]] == [1.0, 0.0]
    assert state.trial("c")["status"] == "finished" and state.trial("c")["early_stopped"]
    assert choose_winner(state) == "a"  # c's 0.2 + 1/2 loses to a's 0.3 + 1/8 at the last rung it reached


def test_wall_time_ends_the_search_at_the_rung_it_reached(tmp_path, monkeypatch, nine):
    planted = Planted(nine, total=27)
    monkeypatch.setattr(halving, "advance", planted)
    state = sweep(tmp_path, planted, wall_seconds=10.5)  # each rung of each trial "takes" 1 s
    assert len(planted.calls) == 11 and state.data["budget_spent"]
    assert state.data["rungs"][1]["kept"] is None
    assert choose_winner(state) == "t3"  # the best of rung 2 among those it reached (t1, t3)
    assert state.trial("t5")["status"] == "stopped_early" and state.trial("t5")["rung"] == 0


def test_a_resumed_search_trains_nothing_twice(tmp_path, monkeypatch, nine):
    planted = Planted(nine, total=27)

    def dies_on_the_eleventh(trial, step):
        if len(planted.calls) == 10:
            raise KeyboardInterrupt  # as a kill: nothing after this point runs
        return planted(trial, step)

    monkeypatch.setattr(halving, "advance", dies_on_the_eleventh)
    with pytest.raises(KeyboardInterrupt):
        sweep(tmp_path, planted)
    done = list(planted.calls)
    monkeypatch.setattr(halving, "advance", planted)
    state = sweep(tmp_path, planted)  # reopens sweep.json
    assert planted.calls[len(done):] == [("t3", 9), ("t5", 9), ("t3", 27)]
    assert choose_winner(state) == "t3"
