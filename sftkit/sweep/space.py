"""The search space of a sweep: which config settings vary, and how.

In `search:`, each key is a dotted config setting (`train.learning_rate`), or several joined by commas for a
tied choice (`train.method, train.learning_rate`), and its value is one of

  a list                          a grid axis: every value is tried (a tied key takes a list of lists);
  {log_uniform: [low, high]}      sampled, uniform in log space (learning rates);
  {uniform: [low, high]}          sampled, uniform;
  {int_uniform: [low, high]}      sampled integer, both ends included;
  {log_grid: [low, high, n]}      a grid axis of n log-spaced values from low to high;
  anything else                   a fixed setting for every trial.

A tied option may itself hold a distribution: `[[lora, {log_uniform: [1e-4, 1e-2]}], [full, 1.0e-4]]`.
Trials walk the grid in order, round-robin when there are more trials than grid points; distributions are
drawn per trial from a generator seeded by (seed, trial index), so trial i's settings do not depend on how
many trials there are. Sampled floats keep 3 significant digits, so configs and their hashes read cleanly.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

SAMPLED = ("log_uniform", "uniform", "int_uniform")
GRIDS = ("log_grid",)


@dataclass(frozen=True)
class Distribution:
    kind: str
    low: float
    high: float

    def sample(self, rng: np.random.Generator):
        if self.kind == "int_uniform":
            return int(rng.integers(int(self.low), int(self.high) + 1))
        if self.kind == "log_uniform":
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return float(f"{value:.3g}")

    def describe(self) -> str:
        return f"{self.kind}[{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Axis:
    """One grid axis: `keys` set together (one key, or a tied group) to each of `options` in turn."""

    keys: tuple[str, ...]
    options: tuple[tuple, ...]


@dataclass(frozen=True)
class SearchSpace:
    axes: tuple[Axis, ...]

    @property
    def keys(self) -> list[str]:
        return [key for axis in self.axes for key in axis.keys]

    @property
    def grid_size(self) -> int:
        return math.prod(len(axis.options) for axis in self.axes)

    @property
    def has_distributions(self) -> bool:
        return any(isinstance(v, Distribution) for axis in self.axes for option in axis.options for v in option)

    def grid(self) -> list[tuple]:
        """Every combination of one option per axis, the first axis varying slowest."""
        return list(itertools.product(*(axis.options for axis in self.axes)))

    def params(self, num_trials: int | None, seed: int) -> list[dict]:
        """The settings of each trial, `{dotted key: value}` in the order the space names them.

        Without distributions: the whole grid, or a seeded subset of `num_trials` points (in grid order).
        With distributions: `num_trials` trials over the grid round-robin, each drawing its own samples.
        """
        grid = self.grid()
        if not self.has_distributions:
            if num_trials is not None and num_trials < len(grid):
                keep = sorted(np.random.default_rng(seed).choice(len(grid), num_trials, replace=False))
                grid = [grid[i] for i in keep]
            return [self._settings(point, None) for point in grid]
        return [self._settings(grid[i % len(grid)], np.random.default_rng([seed, i])) for i in range(num_trials)]

    def _settings(self, point: tuple, rng: np.random.Generator | None) -> dict:
        settings = {}
        for axis, option in zip(self.axes, point):
            for key, value in zip(axis.keys, option):
                settings[key] = value.sample(rng) if isinstance(value, Distribution) else value
        return settings

    def describe(self) -> dict:
        """The space as plain data (for sweep.json and the start-up table)."""
        def show(value):
            return value.describe() if isinstance(value, Distribution) else value
        return {", ".join(a.keys): [[show(v) for v in o] if len(a.keys) > 1 else show(o[0]) for o in a.options]
                for a in self.axes}


def parse_space(search: dict) -> tuple[SearchSpace, list[str]]:
    """The space for a `search:` mapping, and every problem in it (each naming its key and the fix)."""
    axes, problems = [], []
    for raw_key, spec in search.items():
        keys = tuple(k.strip() for k in str(raw_key).split(","))
        where = f"search.{raw_key}"
        if any(not k for k in keys) or len(set(keys)) < len(keys):
            problems.append(f"{where}: name each setting once, separated by commas (train.method, "
                            "train.learning_rate)")
            continue
        if len(keys) > 1:
            if not isinstance(spec, list) or not spec or not all(isinstance(o, list) and len(o) == len(keys)
                                                               for o in spec):
                problems.append(f"{where}: a tied choice takes a list of options, each a list of {len(keys)} "
                                f"values in key order, e.g. [[lora, 1.0e-3], [full, 1.0e-4]]")
                continue
            options = [tuple(_value(v, f"{where}[{i}]", problems) for v in o) for i, o in enumerate(spec)]
        elif isinstance(spec, list):
            if not spec:
                problems.append(f"{where}: an empty list tries nothing; give at least one value")
                continue
            options = [(_value(v, where, problems),) for v in spec]
        elif isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in GRIDS:
            options = [(v,) for v in _log_grid(spec["log_grid"], where, problems)]
        else:
            options = [(_value(spec, where, problems),)]
        axes.append(Axis(keys, tuple(options)))
    return SearchSpace(tuple(axes)), problems


def _value(spec, where: str, problems: list[str]):
    """A fixed value, or a Distribution for a `{kind: [low, high]}` mapping."""
    if not (isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in SAMPLED + GRIDS):
        if isinstance(spec, dict) and len(spec) == 1 and "_" in next(iter(spec)):
            problems.append(f"{where}: unknown distribution {next(iter(spec))!r}: use one of "
                            f"{', '.join(SAMPLED + GRIDS)}")
        return spec
    kind, bounds = next(iter(spec.items()))
    if kind in GRIDS:
        problems.append(f"{where}: log_grid is a whole axis; it cannot sit inside a list")
        return spec
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(_is_number(b) for b in bounds)
            and bounds[0] < bounds[1]):
        problems.append(f"{where}: {kind} takes [low, high] with low < high (got {bounds!r})")
        return spec
    if kind == "log_uniform" and bounds[0] <= 0:
        problems.append(f"{where}: log_uniform needs low > 0 (got {bounds[0]!r})")
        return spec
    if kind == "int_uniform" and not all(float(b).is_integer() for b in bounds):
        problems.append(f"{where}: int_uniform takes whole numbers (got {bounds!r})")
        return spec
    return Distribution(kind, float(bounds[0]), float(bounds[1]))


def _log_grid(bounds, where: str, problems: list[str]) -> list[float]:
    if not (isinstance(bounds, list) and len(bounds) == 3 and all(_is_number(b) for b in bounds)
            and 0 < bounds[0] < bounds[1] and float(bounds[2]).is_integer() and bounds[2] >= 2):
        problems.append(f"{where}: log_grid takes [low, high, n] with 0 < low < high and n >= 2 (got {bounds!r})")
        return []
    low, high, n = math.log(bounds[0]), math.log(bounds[1]), int(bounds[2])
    return [float(f"{math.exp(low + (high - low) * i / (n - 1)):.3g}") for i in range(n)]


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)
