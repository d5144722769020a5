"""The sweep's fixed splits: the base config's train/validation split, read and written once to
OUTPUT_DIR/data/ so that every trial, the base and the second-seed reproduction train and choose on exactly the
same examples, whatever their train.seed.

The test split is sealed: carved from the base's data it is written to OUTPUT_DIR/data/test.jsonl, which
nothing reads until the winner is fixed; a base `data.test_path` is not even opened until then (`read_test`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sftkit.data.dataset import DataReport, load_conversations
from sftkit.recipes.sft_config import SFTConfig
from sftkit.recipes.sft_data import example_rows, read_splits
from sftkit.training.run_dir import write_jsonl


def split_path(out_dir: Path, name: str) -> Path:
    """OUTPUT_DIR/data/NAME.jsonl (train, val, test)."""
    return Path(out_dir) / "data" / f"{name}.jsonl"


def write_splits(base: SFTConfig, out_dir: Path) -> dict:
    """Read the base's data once, split it as `sftkit train` would (its seed, fractions and max_examples), write
    the splits and return what was written: `{name: {path, n, sha256}}` (test: the sealed file, or the base's
    test_path, unread)."""
    d = base.data
    unsplit_test = d.model_copy(update={"test_path": None, "test_fraction": 0.0}) if d.test_path else d
    data_report = DataReport()
    train, val, test = read_splits(unsplit_test, base.train.seed, data_report)
    (Path(out_dir) / "data").mkdir(parents=True, exist_ok=True)
    written = {}
    for name, rows in (("train", train), ("val", val)) + ((("test", test),) if not d.test_path else ()):
        if rows:
            written[name] = _write(split_path(out_dir, name), example_rows(rows))
    if d.test_path:
        written["test"] = {"path": d.test_path, "n": None, "sha256": None}
    if data_report.rejects:
        data_report.write_rejects(Path(out_dir) / "data" / "rejects.jsonl")
    written["rows_skipped"] = data_report.rows_skipped
    return written


def read_test(base: SFTConfig, out_dir: Path) -> Path:
    """The test split as a file of conversations, for scoring: the sealed OUTPUT_DIR/data/test.jsonl, or the
    base's `data.test_path`, read now (the first time) and written there."""
    path = split_path(out_dir, "test")
    if base.data.test_path and not path.exists():
        examples, _ = load_conversations(base.data.test_path, base.data.format, base.data.on_bad_row)
        _write(path, example_rows(examples))
    return path


def _write(path: Path, rows: list[dict]) -> dict:
    tmp = path.with_suffix(".jsonl.tmp")
    write_jsonl(tmp, rows)
    tmp.replace(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"path": str(path), "n": len(rows), "sha256": digest}


def check_splits(written: dict) -> bool:
    """Whether the split files a resumed sweep finds are the ones it wrote."""
    for name in ("train", "val"):
        info = written.get(name)
        if not info or not Path(info["path"]).is_file():
            return False
        if hashlib.sha256(Path(info["path"]).read_bytes()).hexdigest() != info["sha256"]:
            return False
    return True
