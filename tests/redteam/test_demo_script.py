"""examples/redteam/demo.sh runs end to end (shrunk: a tiny model, a few examples, one training step, three
seeds), so the demonstration in docs/redteam.md can be re-run as written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_script_runs_every_step(tmp_path, tiny_model_dir):
    env = {**os.environ, "OUT": str(tmp_path), "PY": sys.executable, "MODEL": str(tiny_model_dir), "PER_KIND": "6",
           "TRAIN_ARGS": "--set train.max_steps=1 --set train.eval_every=1",
           "RT_ARGS": "--max-seeds 3 --attacks direct,prefill --max-new-tokens 2 --no-engaged"}
    done = subprocess.run(["bash", "examples/redteam/demo.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "refusal.jsonl").read_text().splitlines()]
    assert sum(r["kind"] == "refusal" for r in rows) == 6
    refusal = json.loads((tmp_path / "rt_refusal" / "redteam.json").read_text())
    assert refusal["against"] == str(tiny_model_dir) and list(refusal["attacks"]) == ["direct", "prefill"]
    tuned = json.loads((tmp_path / "rt_qs" / "redteam.json").read_text())
    assert tuned["against"].startswith(str(tmp_path / "refusal" / "merged"))
    assert json.loads((tmp_path / "rt_guarded" / "redteam.json").read_text())["guardrail"] is True
    again = subprocess.run(["bash", "examples/redteam/demo.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                           check=False, timeout=60)
    assert again.returncode == 0 and again.stdout.count("skip:") == 6  # resumable: finished steps are skipped
