"""Other libraries' warnings go to the log file, sftkit's own stay on the terminal (sftkit.cli.library_log)."""

from __future__ import annotations

import io
import logging
import sys
import warnings
from pathlib import Path

import pytest
from rich.console import Console

import sftkit
from sftkit.cli import library_log
from sftkit.cli.library_log import LibraryLog

SFTKIT_FILE = str(Path(sftkit.__file__).parent / "data" / "chat_labels.py")
LIBRARY_FILE = "/venv/lib/python3.11/site-packages/somelib/core.py"


def console() -> Console:
    return Console(file=io.StringIO(), width=300, color_system=None)


def terminal_showwarning(message, category, filename, lineno, file=None, line=None):
    """What Python does outside pytest (which records warnings instead): print them to stderr."""
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def test_library_warnings_go_to_the_log_and_sftkit_warnings_stay_visible(tmp_path):
    log, out = tmp_path / "library.log", console()
    own_stream, showwarning = io.StringIO(), warnings.showwarning
    chatty = logging.getLogger("chattylib")
    own_handler = logging.StreamHandler(own_stream)
    chatty.addHandler(own_handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            with LibraryLog(log, out):
                warnings.warn_explicit("old api is deprecated", FutureWarning, LIBRARY_FILE, 12)
                warnings.warn_explicit("no chat template; using ChatML", UserWarning, SFTKIT_FILE, 46)
                warnings.warn_explicit("`is_gradient_checkpointing` is deprecated", FutureWarning, LIBRARY_FILE, 3)
                logging.getLogger("somelib.sub").warning("a library logger without handlers")
                chatty.warning("a library logger with its own console handler")
                logging.getLogger("somelib.sub").info("below WARNING: not logged")
        assert chatty.handlers == [own_handler]  # restored
    finally:
        chatty.removeHandler(own_handler)
    assert own_stream.getvalue() == ""
    assert out.file.getvalue() == f"warning: no chat template; using ChatML\n3 library warning(s) written to {log}\n"
    lines = log.read_text().splitlines()
    assert [line.split(" ", 4)[4] for line in lines] == [
        "sftkit: sftkit",  # the command (only the verbs: arguments may hold secrets)
        f"py.warnings: {LIBRARY_FILE}:12: FutureWarning: old api is deprecated",
        f"py.warnings: {LIBRARY_FILE}:3: FutureWarning: `is_gradient_checkpointing` is deprecated",  # not counted
        "somelib.sub: a library logger without handlers",
        "chattylib: a library logger with its own console handler"]
    assert warnings.showwarning is showwarning
    assert not any(isinstance(h, library_log._CountingFile) for h in logging.getLogger().handlers)


def test_a_library_that_installs_its_console_handler_on_import_is_routed_too(tmp_path, monkeypatch, capsys):
    (tmp_path / "selfhandled.py").write_text("import logging, sys\n"
                                             "logging.getLogger('selfhandled').addHandler(logging.StreamHandler())\n"
                                             "logging.getLogger('selfhandled').propagate = False\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(library_log, "SELF_HANDLING", ("selfhandled",))
    monkeypatch.delitem(sys.modules, "selfhandled", raising=False)
    log = tmp_path / "library.log"
    with LibraryLog(log, console()):
        import selfhandled  # noqa: F401

        logging.getLogger("selfhandled").warning("said at import time's handler")
    assert capsys.readouterr().err == ""
    assert log.read_text().splitlines()[-1].endswith("selfhandled: said at import time's handler")
    assert sys.modules["selfhandled"].__loader__.__class__.__name__ == "SourceFileLoader"
    logging.getLogger("selfhandled").warning("after the command")
    assert capsys.readouterr().err == "after the command\n"


def test_show_leaves_everything_on_the_terminal(monkeypatch):
    monkeypatch.setenv(library_log.SHOW_ENV, "show")
    assert not isinstance(library_log.library_log(console()), LibraryLog)


@pytest.mark.parametrize("command", [("generate", "--prompt", "Hi", "--max-new-tokens", "2"),
                                     ("chat", "--max-new-tokens", "2")])
def test_commands_that_load_an_adapter_run_print_no_library_warning(fake_run, run_cli, monkeypatch,  # noqa: F811
                                                                    tmp_path, command):
    """`sftkit chat RUN` printed transformers' `is_gradient_checkpointing` FutureWarning (raised while peft
    loads the adapter) between the loading bar and the prompt."""
    monkeypatch.setenv("SFTKIT_HOME", str(tmp_path))
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hi\n"))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        monkeypatch.setattr(warnings, "showwarning", terminal_showwarning)
        code, out, err = run_cli(command[0], str(fake_run), *command[1:])
    assert code == 0, err
    assert "Warning" not in out + err and "warnings.warn" not in err
    assert "FutureWarning: `is_gradient_checkpointing` is deprecated" in (tmp_path / "logs" / "library.log").read_text()
