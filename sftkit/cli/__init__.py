"""The `sftkit` command line: one sub-command per verb, grouped in modules by what they act on; the work lives
in the library modules. `main` turns user mistakes into one line and exit code 2, and so does an OSError that
names a path (a path problem no earlier check caught); its traceback goes to a log file, not the terminal."""

from __future__ import annotations

import sys
import traceback

import typer
from rich.text import Text

# Importing a module registers its sub-commands; `sftkit --help` lists them in this order.
from sftkit.cli import run  # noqa: F401  isort: skip
from sftkit.cli import sweep  # noqa: F401  isort: skip
from sftkit.cli import generate  # noqa: F401  isort: skip
from sftkit.cli import evaluate  # noqa: F401  isort: skip
from sftkit.cli import redteam  # noqa: F401  isort: skip
from sftkit.cli import data  # noqa: F401  isort: skip
from sftkit.cli import curate  # noqa: F401  isort: skip
from sftkit.cli import report  # noqa: F401  isort: skip
from sftkit.cli import export  # noqa: F401  isort: skip
from sftkit.cli import serve  # noqa: F401  isort: skip
from sftkit.cli.root import app, console
from sftkit.errors import UserError
from sftkit.paths import os_error_line

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: user mistakes print one line and exit 2, never a traceback; other libraries' warnings go
    to a log file (sftkit.cli.library_log)."""
    from sftkit.cli.library_log import library_log

    with library_log(console):
        _run()


def _run() -> None:
    try:
        app(standalone_mode=False)
    except UserError as exc:
        console.print(Text.assemble(("error: ", "bold red"), exc.format()), soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
    except SystemExit:
        raise
    except OSError as exc:
        line = os_error_line(exc)
        if line is None:  # no path to name: not a path mistake, so the traceback stays
            raise
        console.print(Text.assemble(("error: ", "bold red"), line, _log_traceback()), soft_wrap=True)
        sys.exit(2)
    except Exception as exc:
        # Usage errors (unknown command, missing argument, bad option value). typer ships its own copy of
        # click, whose exception classes are not click's, so they are recognised by what they can do.
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(2)
        raise


def _log_traceback() -> str:
    """Write the current exception's traceback to SFTKIT_HOME/last_error.log; the note pointing at it."""
    from sftkit.paths import home

    try:
        log = home() / "last_error.log"
        log.write_text(traceback.format_exc())
    except (OSError, UserError):
        return ""
    return f" (traceback in {log})"
