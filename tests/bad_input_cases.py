"""Building the bad-input corpus's cases on disk (tests/test_bad_inputs.py, tests/test_bad_paths.py).

A case names files (text, bytes, a Parquet table as a dict of columns, or one of the markers below) inside
its own directory, which its arguments and expected message write as `{tmp}`. Every case also gets a good
data file, a good config that trains on it into `{tmp}/run`, a plain file `afile` and an empty directory
`adir`, so it only has to spell out what is wrong.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

GOOD = '{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}\n'
DIR = "<an empty directory>"
UNREADABLE = "<a file nobody may read>"
READ_ONLY = "<a directory nobody may write into>"

# Files the kernel denies to every user, root included (proc_sys_permission ignores CAP_DAC_OVERRIDE). They
# stand in for chmod when the tests run as root, who reads and writes whatever the permission bits say.
_PROC_WRITE_ONLY = Path("/proc/sys/vm/compact_memory")
_PROC_READ_ONLY_DIR = Path("/proc/sys/vm")


def materialize(tmp: Path, monkeypatch, files: dict, args: list[str], env: dict | None = None) -> list[str]:
    """Write the case's files under `tmp`, set its environment, and return its arguments with `{tmp}` filled."""
    fill = lambda text: text.replace("{tmp}", str(tmp))  # noqa: E731
    base = {"good.jsonl": GOOD * 3, "good.yaml": "data: {train_path: {tmp}/good.jsonl}\noutput_dir: {tmp}/run\n",
            "afile": "a plain file\n", "adir": DIR}
    for name, content in {**base, **files}.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content == DIR:
            path.mkdir()
        elif content == UNREADABLE:
            _deny(path, os.R_OK, lambda p: p.write_text(GOOD), _PROC_WRITE_ONLY)
        elif content == READ_ONLY:
            _deny(path, os.W_OK, Path.mkdir, _PROC_READ_ONLY_DIR)
        elif isinstance(content, dict):
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table(content), path)
        else:
            path.write_bytes(content if isinstance(content, bytes) else fill(content).encode())
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, fill(value))
    return [fill(a) for a in args]


def _deny(path: Path, access: int, create, stand_in: Path) -> None:
    """Create `path`, then take `access` (os.R_OK or os.W_OK) away from it; where the permission bits do not
    bind this user (root), `path` becomes a symbolic link to `stand_in`, which the kernel denies to everyone."""
    create(path)
    path.chmod(0 if access == os.R_OK else 0o555)
    if not os.access(path, access):
        return
    path.rmdir() if path.is_dir() else path.unlink()
    if not stand_in.exists() or os.access(stand_in, access):
        pytest.skip(f"this user (root) ignores permission bits, and {stand_in} does not deny it either")
    path.symlink_to(stand_in)
