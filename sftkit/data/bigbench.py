"""BIG-bench tasks from the official `bigbench==1.0.0` sdist on PyPI, fetched once and extracted per task.

`pip download --no-deps bigbench==1.0.0` cannot be used as is: pip prepares the sdist's metadata, which
declares a direct-URL dependency, and then refuses the download. So the sdist is located through the
package index pip is configured with (PEP 691 JSON simple API), checked against the index's sha256, and
cached under SFTKIT_HOME/downloads. Only the `task.json` files of the named tasks are extracted, into
SFTKIT_HOME/bigbench/tasks/TASK (a task with subtasks gets one sub-directory per subtask).

Reading the 350 MB archive takes seconds, so it is read in one streaming pass for all missing tasks, and the
list of tasks it holds is kept in SFTKIT_HOME/bigbench/index.json: unknown names are then refused at once.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

from sftkit.data.readers import Row
from sftkit.errors import UserError
from sftkit.paths import cache_dir

SDIST = "bigbench-1.0.0.tar.gz"
_PREFIX = "bigbench-1.0.0/bigbench/benchmark_tasks/"
_TASK_NAME = re.compile(r"^[A-Za-z0-9_]+(/[A-Za-z0-9_]+)?$")


def tasks_dir() -> Path:
    return cache_dir("bigbench", "tasks")


def _index_path() -> Path:
    return cache_dir("bigbench") / "index.json"


def _index_url() -> str:
    url = os.environ.get("PIP_INDEX_URL")
    if not url:
        try:
            out = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                                 capture_output=True, text=True, timeout=30)
            url = out.stdout.strip() if out.returncode == 0 else ""
        except (OSError, subprocess.TimeoutExpired):
            url = ""
    return (url or "https://pypi.org/simple").rstrip("/")


def sdist_path() -> Path:
    """The cached sdist, downloaded (and sha256-checked) on first use."""
    target = cache_dir("downloads") / SDIST
    if target.exists():
        return target
    index = _index_url()
    request = urllib.request.Request(f"{index}/bigbench/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    tmp = target.with_suffix(f".part{os.getpid()}")
    try:
        listing = json.load(urllib.request.urlopen(request, timeout=60))
        entry = next(f for f in listing["files"] if f["filename"] == SDIST)
        urllib.request.urlretrieve(entry["url"], tmp)
    except (OSError, StopIteration, KeyError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot download {SDIST} from {index}: {exc}. Download it by hand and place it at "
                        f"{target}") from None
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    expected = entry.get("hashes", {}).get("sha256")
    if expected and digest != expected:
        tmp.unlink()
        raise UserError(f"{SDIST} failed its sha256 check ({digest} != {expected}); try again")
    tmp.rename(target)
    return target


def fetch(tasks: list[str]) -> dict[str, list[Path]]:
    """Extract each task (a name, or `name/subtask`) into the cache; tasks already there are not re-read.

    Returns: task name -> task.json paths (the task's own, or one per subtask when it has subtasks).

    Raises:
        UserError: an unknown task or subtask (with close matches), or an sdist that cannot be read.
    """
    for task in tasks:
        if not _TASK_NAME.match(task):
            raise UserError(f"bad BIG-bench task name {task!r}: use a name such as general_knowledge, or "
                            "task/subtask")
    missing = sorted({t.split("/")[0] for t in tasks if not (tasks_dir() / t.split("/")[0]).is_dir()})
    if missing:
        index = _read_index()
        if index is not None:
            _check_known(missing, index)  # refuse a typo without reading the archive
        index = _extract(missing, index)
        _check_known(missing, index)
    found = {}
    for task in tasks:
        files = _task_files(task)
        if not files:
            top, _, sub = task.partition("/")
            subtasks = sorted(p.name for p in (tasks_dir() / top).iterdir() if p.is_dir())
            hint = difflib.get_close_matches(sub, subtasks, n=3)
            raise UserError(f"BIG-bench task {top!r} has no subtask {sub!r}" +
                            (f"; did you mean {', '.join(hint)}?" if hint else
                             f"; its subtasks are {', '.join(subtasks) or 'none'}"))
        found[task] = files
    return found


def _read_index() -> dict | None:
    try:
        return json.loads(_index_path().read_text())
    except (OSError, ValueError):
        return None


def _check_known(names: list[str], index: dict) -> None:
    json_tasks = index["json_tasks"]
    for name in names:
        if name in json_tasks:
            continue
        if name in index["all_tasks"]:
            raise UserError(f"BIG-bench task {name!r} is programmatic (task.py, no task.json); only JSON tasks "
                            "can be used as data")
        hint = difflib.get_close_matches(name, sorted(json_tasks), n=3)
        raise UserError(f"unknown BIG-bench task {name!r}" + (f"; did you mean {', '.join(hint)}?" if hint else
                        f"; {len(json_tasks)} JSON tasks exist, e.g. {', '.join(sorted(json_tasks)[:5])}"))


def _extract(tops: list[str], index: dict | None) -> dict:
    """One streaming pass over the sdist: extract the task.json files of `tops`, list every task.

    Each task is staged in a private directory and renamed into place when complete, so an interrupted or
    concurrent fetch never leaves a task with missing subtasks in the cache. With a known index, the pass
    stops once every wanted file is out.
    """
    staging = {top: tasks_dir() / f".{top}.tmp{os.getpid()}" for top in tops}
    remaining = None
    if index is not None:
        remaining = sum(len(index["json_tasks"].get(top, [])) for top in tops)
    json_tasks: dict[str, list[str]] = {}
    all_tasks: set[str] = set()
    path = sdist_path()
    try:
        with tarfile.open(path, "r|gz") as archive:
            for member in archive:
                if not member.name.startswith(_PREFIX) or "/" not in member.name[len(_PREFIX):]:
                    continue
                rel = member.name[len(_PREFIX):]
                top, inner = rel.split("/", 1)
                all_tasks.add(top)
                if not (member.isfile() and (inner == "task.json" or inner.endswith("/task.json"))):
                    continue
                json_tasks.setdefault(top, []).append(inner)
                if top in staging:
                    out = staging[top] / inner
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(archive.extractfile(member).read())
                    if remaining is not None:
                        remaining -= 1
                        if remaining == 0:
                            break
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        for tmp in staging.values():
            shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"cannot read {path} ({exc}): delete it and fetch again") from None
    for top, tmp in staging.items():
        if tmp.is_dir():
            try:
                tmp.rename(tasks_dir() / top)
            except OSError:  # another process finished first; theirs is complete
                shutil.rmtree(tmp, ignore_errors=True)
    if remaining is not None:  # stopped early: the index already lists everything
        return index
    index = {"json_tasks": {k: sorted(v) for k, v in sorted(json_tasks.items())}, "all_tasks": sorted(all_tasks)}
    tmp_index = _index_path().with_suffix(f".tmp{os.getpid()}")
    tmp_index.write_text(json.dumps(index, indent=1))
    os.replace(tmp_index, _index_path())
    return index


def _task_files(task: str) -> list[Path]:
    """The task's own task.json if it has examples; otherwise every subtask's."""
    root = tasks_dir() / task
    if not root.is_dir():
        return []
    top = root / "task.json"
    if top.exists() and json.loads(top.read_text()).get("examples"):
        return [top]
    return sorted(p for p in root.rglob("task.json") if p != top)


def load_task(task: str) -> list[tuple[Path, dict]]:
    """Fetch if needed and return (path, parsed task.json) per (sub)task."""
    return [(p, json.loads(p.read_text())) for p in fetch([task])[task]]


def iter_bigbench_rows(task: str) -> Iterator[Row]:
    """Rows of every (sub)task; each row's source is `bigbench:TASK` or `bigbench:TASK/SUBTASK`."""
    for path, data in load_task(task):
        yield from rows_from_task(data, f"bigbench:{path.parent.relative_to(tasks_dir()).as_posix()}")


def rows_from_task(task: dict, source: str) -> Iterator[Row]:
    """Rows of a parsed task.json; `task_prefix` and the example prefixes travel in `Row.extra`."""
    extra = {
        "task_prefix": task.get("task_prefix", ""),
        "example_input_prefix": task.get("example_input_prefix"),
        "example_output_prefix": task.get("example_output_prefix"),
        "choice_prefix": task.get("choice_prefix"),
        "append_choices_to_input": task.get("append_choices_to_input", True),
    }
    examples = task.get("examples") or []
    if not examples:
        raise UserError("task.json has no examples", source)
    for index, example in enumerate(examples, start=1):
        yield Row(dict(example), source, index, extra=dict(extra))
