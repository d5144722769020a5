"""Other libraries' warnings go to a log file, so the terminal shows sftkit's own output.

While a command runs, Python warnings raised from code outside the sftkit package and WARNING records of
library loggers (transformers, torch, peft, datasets, huggingface_hub, ...) are appended to
`SFTKIT_HOME/logs/library.log`; at the end one line says how many went there (known ones a user cannot act
on are logged but not counted). sftkit's own warnings still print, as one `warning:` line each.
`SFTKIT_LIBRARY_WARNINGS=show` leaves everything on the terminal.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import logging
import logging.handlers
import os
import re
import sys
import warnings
from pathlib import Path

from rich.text import Text

import sftkit
from sftkit.errors import UserError

SHOW_ENV = "SFTKIT_LIBRARY_WARNINGS"
# Logged but not counted in the closing line: nothing a user can act on.
KNOWN = (re.compile(r"`is_gradient_checkpointing` is deprecated"),)  # peft calls an API transformers 5 deprecated
# Libraries that give their loggers a console handler of their own when imported, so their records never
# reach the root logger; once one is imported, that handler is swapped for the log file.
SELF_HANDLING = ("torch", "transformers")
_SFTKIT_DIR = Path(sftkit.__file__).resolve().parent


def is_sftkit_file(filename: str) -> bool:
    """True for a file inside the sftkit package: a warning sftkit raised (or raised about its caller)."""
    try:
        return Path(filename).resolve().is_relative_to(_SFTKIT_DIR)
    except (OSError, ValueError):
        return False


class _CountingFile(logging.handlers.RotatingFileHandler):
    """The log file (opened on the first record, 1 MiB kept plus one older file), counting what it took."""

    def __init__(self, path: Path):
        super().__init__(path, maxBytes=2**20, backupCount=1, encoding="utf-8", delay=True)
        self.setLevel(logging.WARNING)
        self.setFormatter(logging.Formatter("%(asctime)s pid %(process)d %(name)s: %(message)s"))
        self.count = 0
        self._last: logging.LogRecord | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record is self._last:  # a propagating logger hands the same record to its parent's copy of us
            return
        if self._last is None:
            super().emit(logging.makeLogRecord({"name": "sftkit", "msg": _command(), "created": record.created,
                                                "msecs": record.msecs, "process": record.process}))
        self._last = record
        self.count += not any(pattern.search(record.getMessage()) for pattern in KNOWN)
        super().emit(record)


def _command() -> str:
    """`sftkit VERB [SUBVERB]`: the words before the first path or option (arguments may hold secrets)."""
    words = []
    for arg in sys.argv[1:3]:
        if not re.fullmatch(r"[a-z][a-z-]*", arg):
            break
        words.append(arg)
    return " ".join(["sftkit", *words])


class _AfterImport:
    """A meta-path finder that calls `callback` each time one of `names` finishes importing (Python has no
    post-import hook); the module ends up with its own loader."""

    def __init__(self, names: tuple[str, ...], callback):
        self.names, self.callback = names, callback

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenCall(spec, spec.loader, self.callback)
        return spec


class _ThenCall:
    def __init__(self, spec, loader, callback):
        self.spec, self.loader, self.callback = spec, loader, callback

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.spec.loader = module.__loader__ = self.loader
        self.loader.exec_module(module)
        self.callback()

    def __getattr__(self, name):  # a spec found but not imported keeps answering as its own loader
        return getattr(self.loader, name)


class LibraryLog:
    """The context one command runs in: library warnings to `path`, sftkit's own to `console`; everything is
    restored on exit."""

    def __init__(self, path: Path, console):
        self.path, self.console = path, console
        self.handler = _CountingFile(path)
        self.swapped: list[tuple[logging.Logger, logging.Handler]] = []
        self.finder = _AfterImport(SELF_HANDLING, self.adopt_console_handlers)

    def __enter__(self) -> LibraryLog:
        self.previous_showwarning = warnings.showwarning
        warnings.showwarning = self.showwarning
        logging.getLogger().addHandler(self.handler)  # loggers without a handler of their own propagate here
        self.adopt_console_handlers()
        sys.meta_path.insert(0, self.finder)
        return self

    def __exit__(self, *exc) -> None:
        if self.finder in sys.meta_path:
            sys.meta_path.remove(self.finder)
        for logger, handler in self.swapped:
            logger.removeHandler(self.handler)
            logger.addHandler(handler)
        logging.getLogger().removeHandler(self.handler)
        warnings.showwarning = self.previous_showwarning
        self.handler.close()
        if self.handler.count:
            self.console.print(Text(f"{self.handler.count} library warning(s) written to {self.path}", style="dim"),
                               soft_wrap=True)

    def showwarning(self, message, category, filename, lineno, file=None, line=None) -> None:
        """`warnings.showwarning` while the command runs."""
        if is_sftkit_file(filename):
            self.console.print(Text.assemble(("warning: ", "bold yellow"), str(message)), soft_wrap=True)
            return
        text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
        self.handler.handle(logging.LogRecord("py.warnings", logging.WARNING, filename, lineno, text, None, None))

    def adopt_console_handlers(self) -> None:
        """Swap each library logger's own console handler for the log file."""
        for name, logger in list(logging.Logger.manager.loggerDict.items()):
            if not isinstance(logger, logging.Logger) or name.partition(".")[0] == "sftkit":
                continue
            for handler in list(logger.handlers):
                if type(handler) is logging.StreamHandler:  # not files, not pytest's or a user's own classes
                    logger.removeHandler(handler)
                    logger.addHandler(self.handler)
                    self.swapped.append((logger, handler))


def library_log(console):
    """The context `sftkit.cli.main` runs a command in (one that changes nothing with
    SFTKIT_LIBRARY_WARNINGS=show)."""
    from sftkit.paths import cache_dir

    if os.environ.get(SHOW_ENV) == "show":
        return contextlib.nullcontext()
    try:
        return LibraryLog(cache_dir("logs") / "library.log", console)
    except (OSError, UserError):  # no usable SFTKIT_HOME: warnings stay on the terminal rather than vanish;
        return contextlib.nullcontext()  # the command itself then reports what is wrong with it
