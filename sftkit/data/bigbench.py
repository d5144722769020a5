"""BIG-bench tasks from the official `bigbench==1.0.0` sdist on PyPI, fetched once and extracted per task.

`pip download --no-deps bigbench==1.0.0` cannot be used as is: pip prepares the sdist's metadata, which
declares a direct-URL dependency, and then refuses the download. So the sdist is located through the
package index pip is configured with (PEP 691 JSON simple API), checked against the index's sha256, and
cached under SFTKIT_HOME/downloads. Only the named `task.json` files are extracted.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from sftkit.data.readers import Row
from sftkit.errors import UserError
from sftkit.paths import cache_dir

SDIST = "bigbench-1.0.0.tar.gz"
_PREFIX = "bigbench-1.0.0/bigbench/benchmark_tasks/"


def tasks_dir() -> Path:
    return cache_dir("bigbench", "tasks")


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
    try:
        listing = json.load(urllib.request.urlopen(request, timeout=60))
        entry = next(f for f in listing["files"] if f["filename"] == SDIST)
        tmp = target.with_suffix(f".part{os.getpid()}")
        urllib.request.urlretrieve(entry["url"], tmp)
    except (OSError, StopIteration, KeyError, ValueError) as exc:
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
    """Extract `task.json` for each task (a name, or `name/subtask`) into the cache; cached tasks are skipped.

    Returns: task name -> extracted task.json paths (one, or one per subtask).
    """
    wanted = {t: _task_files(t) for t in tasks}
    missing = [t for t, files in wanted.items() if not files]
    if missing:
        with tarfile.open(sdist_path()) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith(_PREFIX) and m.name.endswith("task.json")]
            names = sorted({m.name[len(_PREFIX):].split("/")[0] for m in members})
            for task in missing:
                top = task.split("/")[0]
                if top not in names:
                    import difflib

                    hint = difflib.get_close_matches(top, names, n=3)
                    raise UserError(f"unknown BIG-bench task {task!r}" + (f"; did you mean {', '.join(hint)}?" if hint
                                    else f"; {len(names)} tasks exist, e.g. {', '.join(names[:5])}"))
                for member in members:
                    rel = member.name[len(_PREFIX):]
                    if rel.startswith(task + "/"):
                        out = tasks_dir() / rel
                        out.parent.mkdir(parents=True, exist_ok=True)
                        data = archive.extractfile(member).read()
                        tmp = out.with_suffix(".part")
                        tmp.write_bytes(data)
                        tmp.rename(out)
        wanted = {t: _task_files(t) for t in tasks}
    return wanted


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
    for path, data in load_task(task):
        yield from rows_from_task(data, f"bigbench:{task}" if path.parent.name == task else
                                  f"bigbench:{task}/{path.parent.name}")


def rows_from_task(task: dict, source: str) -> Iterator[Row]:
    """Rows of a parsed task.json; `task_prefix` and the example prefixes travel in `Row.extra`."""
    extra = {
        "task_prefix": task.get("task_prefix", ""),
        "example_input_prefix": task.get("example_input_prefix"),
        "example_output_prefix": task.get("example_output_prefix"),
        "choice_prefix": task.get("choice_prefix"),
    }
    examples = task.get("examples") or []
    if not examples:
        raise UserError("task.json has no examples", source)
    for index, example in enumerate(examples, start=1):
        yield Row(dict(example), source, index, extra=dict(extra))
