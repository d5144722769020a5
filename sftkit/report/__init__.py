"""Reports: RUN/report.html (one self-contained page with inline SVG charts), the comparison page of several
runs, and model cards (README.md) in a run's model directories.

    write_report(run_dir) -> Path                    sftkit/report/page.py
    write_comparison(run_dirs, output=None) -> Path  sftkit/report/compare_runs.py
    write_model_card(model_dir, run_dir=None, export=None) -> Path, write_model_cards(run_dir)  model_card.py

`sftkit.report(...)` is the Python API's verb (sftkit.api.report): importing this package makes the name
`sftkit.report` this module, so the module itself is callable and calls it.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from sftkit.api import report

        return report(*args, **kwargs)

    __call__.__doc__ = "sftkit.api.report: see its docstring."


sys.modules[__name__].__class__ = _CallableModule


def write_report(run_dir, output=None) -> Path:
    from sftkit.report.page import write_report as write

    return write(run_dir, output)


def write_comparison(run_dirs, output=None, title: str = "sftkit run comparison") -> Path:
    from sftkit.report.compare_runs import write_comparison as write

    return write(run_dirs, output, title)


def write_model_card(model_dir, run_dir=None, *, export: dict | None = None) -> Path:
    from sftkit.report.model_card import write_model_card as write

    return write(model_dir, run_dir, export=export)


def write_model_cards(run_dir) -> list[Path]:
    from sftkit.report.model_card import write_model_cards as write

    return write(run_dir)


def report_after_training(run_dir: Path, say=print) -> Path | None:
    """The end of `sftkit train` / `sftkit dpo`: model cards, then RUN/report.html; `say` gets the report's path.

    A report must never fail a finished training run: a problem is said in one line (the run's results are all
    in its JSON files, and `sftkit report RUN` writes the page again) and None is returned.
    """
    try:
        write_model_cards(run_dir)
        path = write_report(run_dir)
    except Exception as exc:  # noqa: BLE001 -- any failure of the page leaves the finished run intact
        say(f"no report: {type(exc).__name__}: {exc} (`sftkit report {run_dir}` tries again)")
        return None
    say(f"report: {path}")
    return path
