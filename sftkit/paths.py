"""Where sftkit keeps converted models and fetched data (SFTKIT_HOME, default ~/.cache/sftkit), and the checks
every path a user gives goes through before sftkit reads or writes it.

The checks turn the usual mistakes (a file where a directory belongs or the reverse, a missing or
unreadable input, an output under a file or in a directory nobody may write) into one line naming the
path and the fix, raised as a UserError before any model loads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from sftkit.errors import UserError

Kind = Literal["file", "dir", "any"]
SpecKind = Literal["data", "model", "task", "output_dir"]

_MODEL_MARKERS = ("config.json", "summary.json", "adapter", "merged")  # a model directory, or an sftkit run's
_UNREADABLE = "is not readable (permission denied): fix its permissions (chmod u+r) or copy it somewhere readable"
_UNWRITABLE = "is not writable (permission denied): choose a directory you can write to"


def home() -> Path:
    """The cache root; created on first use."""
    root = Path(os.environ.get("SFTKIT_HOME") or Path.home() / ".cache" / "sftkit").expanduser()
    return _make_dir(root, "SFTKIT_HOME")


def cache_dir(*parts: str) -> Path:
    """A sub-directory of the cache, created on first use."""
    return _make_dir(home().joinpath(*parts), "the sftkit cache directory")


def _make_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        check_output(path, what, "dir")
        path.mkdir(parents=True, exist_ok=True)
    return path


def input_problem(path: str | Path, what: str, kind: Kind = "any", missing: str = "check the path") -> str | None:
    """Why `path` cannot be read as `kind` (None when it can): missing, a file where a directory belongs or the
    reverse, or unreadable. `what` names it for the user (`config file`, `data.train_path`); `missing` is the
    fix given when it does not exist."""
    p = Path(path).expanduser()
    if not p.exists():
        return f"{what} {p} does not exist: {missing}"
    if kind == "file" and p.is_dir():
        return f"{what} {p} is a directory, not a file: give a file inside it"
    if kind == "dir" and not p.is_dir():
        return f"{what} {p} is a file, not a directory: give the directory it is in ({p.parent}) or another one"
    if not os.access(p, os.R_OK | (os.X_OK if p.is_dir() else 0)):
        return f"{what} {p} {_UNREADABLE}"
    return None


def output_problem(path: str | Path, what: str, kind: Kind = "dir") -> str | None:
    """Why sftkit cannot create or overwrite `path` as a `kind` (None when it can). Missing parent directories
    are fine (they are created); an ancestor that is a file, or one nobody may write to, is not."""
    p = Path(path).expanduser()
    if p.is_symlink() and not p.exists():
        return f"{what} {p} is a broken symbolic link (to {os.readlink(p)}): remove it or choose another path"
    if p.exists():
        if kind == "dir" and not p.is_dir():
            return f"{what} {p} is an existing file, not a directory: remove it or choose another {what}"
        if kind == "file" and p.is_dir():
            return f"{what} {p} is a directory, not a file: give a file path (e.g. {p / 'out.jsonl'})"
        if not os.access(p, os.W_OK | (os.X_OK if p.is_dir() else 0)):
            return f"{what} {p} {_UNWRITABLE}"
        return None
    ancestor = p.absolute().parent
    while not ancestor.exists() and not ancestor.is_symlink():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{what} {p} cannot be created: {ancestor} is a file, not a directory: choose another {what}"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{what} {p} cannot be created: {ancestor} {_UNWRITABLE}"
    return None


def check_input(path: str | Path, what: str, kind: Kind = "any", missing: str = "check the path") -> Path:
    """`path` as a Path, or UserError with `input_problem`'s line."""
    problem = input_problem(path, what, kind, missing)
    if problem:
        raise UserError(problem)
    return Path(path).expanduser()


def check_output(path: str | Path, what: str, kind: Kind = "dir") -> Path:
    """`path` as a Path, or UserError with `output_problem`'s line."""
    problem = output_problem(path, what, kind)
    if problem:
        raise UserError(problem)
    return Path(path).expanduser()


def local_data_path(spec: str) -> Path | None:
    """The local path a data spec names, or None for `bigbench:TASK` and hub dataset ids (`hf:ORG/NAME`, or
    `ORG/NAME` with no suffix when no such local path exists)."""
    if spec.startswith(("bigbench:", "hf:")):
        return None
    path = Path(spec).expanduser()
    if path.exists() or path.is_symlink():
        return path
    if "/" in spec and not spec.startswith((".", "/", "~")) and not path.suffix:
        return None
    return path


def local_model_path(name: str | None) -> Path | None:
    """The local directory a model name names, or None for `default` and hub ids."""
    if not name or name == "default":
        return None
    path = Path(name).expanduser()
    return path if path.exists() or path.is_symlink() or name.startswith((".", "/", "~")) else None


def path_problems(config, outputs: bool = True, prefix: str = "") -> list[str]:
    """Every path field of a pydantic `config` (marked `json_schema_extra={"path": KIND}`, see `spec_problem`)
    that cannot be used; `outputs=False` leaves output directories unchecked."""
    from pydantic import BaseModel

    problems = []
    for name, info in type(config).model_fields.items():
        value, key = getattr(config, name), prefix + name
        if isinstance(value, BaseModel):
            problems += path_problems(value, outputs, key + ".")
            continue
        kind = info.json_schema_extra.get("path") if isinstance(info.json_schema_extra, dict) else None
        if kind is None or value is None or (kind == "output_dir" and not outputs):
            continue
        problems += [p for spec in (value if isinstance(value, list) else [value])
                     if (p := spec_problem(kind, str(spec), key))]
    return problems


def spec_problem(kind: SpecKind, spec: str, what: str) -> str | None:
    """Why `spec` cannot be used as a `kind` (None when it can, or when it names no local path: hub ids and
    BIG-bench names are left to their loaders).

    Kinds: `data` (a file, a directory, `bigbench:TASK` or a hub dataset id), `model` (`default`, a hub id or a
    directory), `task` (an evaluation task: also `default`, `perplexity:fables` and `perplexity:FILE`) and
    `output_dir` (a directory sftkit creates or writes into).
    """
    if kind == "output_dir":
        return output_problem(spec, what, "dir")
    if kind == "model":
        local = local_model_path(spec)
        problem = input_problem(local, what, "dir") if local else None
        if local and not problem and not any((local / name).exists() for name in _MODEL_MARKERS):
            problem = (f"{what} {local} has no config.json: give a Hugging Face model directory (or the "
                       "output_dir of an sftkit run)")
        return problem
    if kind == "task":
        spec = spec.split(":", 1)[1] if spec.startswith("perplexity:") else spec
        if spec in ("default", "fables"):
            return None
    local = local_data_path(spec)
    return input_problem(local, what, "any", "check the path (or use bigbench:TASK, or hf:ORG/NAME)") if local else None


def check_spec(kind: SpecKind, spec: str | Path | None, what: str) -> None:
    """UserError with `spec_problem`'s line, if any (a None spec is fine: the default applies)."""
    problem = spec_problem(kind, str(spec), what) if spec is not None else None
    if problem:
        raise UserError(problem)


def os_error_line(exc: OSError) -> str | None:
    """One line for an OSError that names a path (the path, what the system said, the fix), or None when it
    names none."""
    if not exc.filename:
        return None
    where = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "")
    reason = exc.strerror or type(exc).__name__
    return f"{where}: {reason}: check that the path exists, is of the right kind, and that you may read or write it"


def results_dir(model: str, kind: str) -> Path:
    """Where a verb writes its results without --output: RUN/KIND for a run directory, else
    eval_results/NAME (`eval`) or eval_results/NAME/KIND (`safety`, ...)."""
    from sftkit.models import is_run_dir

    if is_run_dir(model):
        return Path(model) / kind
    base = Path("eval_results") / (Path(model).name if Path(model).exists() else model.replace("/", "--"))
    return base if kind == "eval" else base / kind
