"""examples/data/tools.json is what examples/make_tool_data.py writes (seed 0), and every row of it is a good
tool conversation: 400 read, none skipped, the file's three tools on each, 374 with calls."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sftkit.data.dataset import load_conversations

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data" / "tools.json"


def test_generator_writes_the_shipped_file_byte_for_byte(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "make_tool_data.py"), "-o", str(tmp_path / "t.json")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "t.json").read_bytes() == DATA.read_bytes()


def test_every_shipped_conversation_is_a_good_row():
    examples, report = load_conversations(str(DATA))
    assert (report.rows_read, report.rows_skipped, len(examples)) == (400, 0, 400)
    names = {tool["function"]["name"] for tool in examples[0].tools}
    assert names == {"get_weather", "calculate", "convert_currency"}
    assert all(ex.tools == examples[0].tools for ex in examples)
    # 26 of the 400 (6.5%) are small talk that calls no tool
    assert sum(any(m.get("tool_calls") for m in ex.messages) for ex in examples) == 374
