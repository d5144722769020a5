"""How measured figures are written on the pages: values with their 95% interval and n, signed differences,
durations and sizes. An estimate is any mapping with `ci_low`/`ci_high` and `value` (a rate) or `abs` (a
paired difference), as sftkit's evaluations write them."""

from __future__ import annotations


def is_estimate(x) -> bool:
    return isinstance(x, dict) and "ci_low" in x and "ci_high" in x and ("value" in x or "abs" in x)


def value_of(estimate: dict) -> float | None:
    return estimate.get("value", estimate.get("abs"))


def num(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def signed(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


def interval(estimate: dict, digits: int = 3, sign: bool = False) -> str:
    """`[low, high]`, or `-` when the estimate has no interval (n = 0)."""
    if estimate.get("ci_low") is None:
        return "-"
    f = signed if sign else num
    return f"[{f(estimate['ci_low'], digits)}, {f(estimate['ci_high'], digits)}]"


def estimate_text(estimate: dict, digits: int = 3, sign: bool = False) -> str:
    """`0.812 [0.703, 0.906] n=32`."""
    f = signed if sign else num
    n = f" n={estimate['n']}" if estimate.get("n") is not None else ""
    return f"{f(value_of(estimate), digits)} {interval(estimate, digits, sign)}{n}"


def direction(estimate: dict) -> int:
    """+1 when the whole 95% interval is above 0, -1 when it is below, 0 when it includes 0."""
    if estimate.get("ci_low") is None:
        return 0
    return 1 if estimate["ci_low"] > 0 else -1 if estimate["ci_high"] < 0 else 0


def seconds(value) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.0f} s"
    return f"{value / 60:.1f} min" if value < 7200 else f"{value / 3600:.1f} h"


def megabytes(value) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f} MB" if value < 10240 else f"{value / 1024:.1f} GB"


def ratio(measured, estimated) -> str:
    """`1.23x the estimate`, or `-` without both figures."""
    if not measured or not estimated:
        return "-"
    return f"{measured / estimated:.2f}x the estimate"


def baseline_label(key: str, shots: int | None) -> str:
    return {"base_zero_shot": "base model, zero-shot", "base_k_shot": f"base model, {shots}-shot",
            "tuned": "fine-tuned, zero-shot"}.get(key, key)


def task_label(name: str) -> str:
    return name.removeprefix("bigbench:")
