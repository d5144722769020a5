"""`sftkit sweep`: find the settings that win, by successive halving on validation data, resumably.

    space.py        the search space (grids, sampled ranges, tied choices), drawn with a fixed seed
    config.py       SWEEP.yaml (SweepConfig) and its validation into a SweepPlan
    splits.py       one train/validation split for every trial; the test split sealed until the end
    trial.py        trials: ordinary run directories named by the hash of their resolved config
    objective.py    what trials are compared by (validation loss, or a validation metric)
    halving.py      synchronous successive halving over rungs at fixed fractions of the budget
    select.py       the winner on validation; base, reproduction and test scores afterwards
    state.py        sweep.json, written atomically after every step of the way
    leaderboard.py  the live terminal leaderboard, best.yaml, the comparison page
    auto.py         the built-in search space of `--auto`, with its sources
    runner.py       all of it, in order

`sftkit.sweep(config, ...)` calls the Python API's `sftkit.api.sweep`: the package and the verb share the
name, so the package itself is callable (an attribute `sftkit.sweep` that was the function would stop being
one as soon as a module of this package is imported).
"""

from __future__ import annotations

import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from sftkit.api import sweep

        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
