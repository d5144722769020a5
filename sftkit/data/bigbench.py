"""BIG-bench in one place: tasks from the official `bigbench==1.0.0` sdist on PyPI (fetched once, extracted per
task), their rows, and both prompt renderings (a chat user turn for training; BIG-bench's own zero-shot text
for multiple-choice scoring).

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

import numpy as np

from sftkit.data.rows import Row, RowError
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

# ---- the two prompt renderings --------------------------------------------------------------------------
# Training and generation tasks use `chat_prompt` as a chat user turn (the chat template adds the rest);
# multiple-choice scoring uses BIG-bench's own zero-shot text (`scoring_prompt`) with its whitespace rule
# (`choice_prompt`), as bigbench/api/json_task.py scores a model.

CONTEXT_KEYS = ("task_prefix", "example_input_prefix", "example_output_prefix", "choice_prefix",
                "append_choices_to_input")


def chat_prompt(data: dict, extra: dict) -> str:
    """The user turn of a BIG-bench example: task prefix, input, and the answer choices of a multiple-choice
    example unless the task sets `append_choices_to_input: false`.

    The task-level context comes from `extra` (read from task.json) or, for rows written out on their own (a
    curated file in `keep` format), from the same keys in the row itself.
    """
    extra = {**{k: data[k] for k in CONTEXT_KEYS if k in data}, **extra}
    prefix = extra.get("task_prefix") or ""
    text = prefix + (extra.get("example_input_prefix") or "") + str(data["input"])
    scores = data.get("target_scores")
    if isinstance(scores, dict) and scores and extra.get("append_choices_to_input", True):
        choice_prefix = extra.get("choice_prefix") or "\n  choice: "
        text += "".join(choice_prefix + str(c) for c in scores)
    return text


def reference_answer(data: dict) -> str:
    """The reference answer: the first `target`, else the highest-scored choice."""
    target = data.get("target")
    if isinstance(target, list) and target:
        return str(target[0])
    if isinstance(target, str) and target:
        return target
    scores = data.get("target_scores")
    if isinstance(scores, dict) and scores:
        return str(max(scores.items(), key=lambda kv: kv[1])[0])
    raise RowError("missing_field", "BIG-bench example has neither a non-empty `target` nor `target_scores`")


def scoring_prompt(task: dict, example: dict) -> str:
    """BIG-bench's own zero-shot prompt (bigbench/api/json_task.py): task prefix, input prefix, input, the
    choices in BIG-bench's seeded order when `append_choices_to_input`, and the output prefix."""
    text = str(example["input"])
    scores = example.get("target_scores") or {}
    if scores and task.get("append_choices_to_input", True):
        choice_prefix = task.get("choice_prefix", "\n  choice: ")
        order = np.random.RandomState(seed=42).permutation(sorted(scores))
        text += choice_prefix + choice_prefix.join(order)
    return (str(task.get("task_prefix", "")) + task.get("example_input_prefix", "\nQ: ") + text
            + task.get("example_output_prefix", "\nA: "))


def choice_prompt(task: dict, example: dict) -> tuple[str, list[str], list[int]]:
    """(context, choices, indices of the best choices) of a multiple-choice example, with BIG-bench's
    whitespace rule: a choice follows the output prefix after exactly one space, whatever spaces end the prefix
    or start the choice (`\\nA: ` + `Yes` is `\\nA: Yes`, `\\nAssistant:` + `Yes` is `\\nAssistant: Yes`);
    after a prefix that ends a line, the choice starts the next line. The scored text is `context + choice`."""
    head = scoring_prompt(task, example).rstrip(" \t")
    context = head if not head or head.endswith("\n") else head + " "
    scores = example["target_scores"]
    correct = [j for j, v in enumerate(scores.values()) if v == max(scores.values())]
    return context, [str(c).lstrip() for c in scores], correct
