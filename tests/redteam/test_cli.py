"""`sftkit redteam` on the command line: tables and redteam.json; user mistakes are one line and exit 2."""

from __future__ import annotations

import json
import shutil

import pytest

FAST = ["--max-seeds", "4", "--max-new-tokens", "2", "--no-engaged", "--num-threads", "1"]


def test_redteam_against_a_base_prints_rates_intervals_and_deltas(tmp_path, tiny_model_dir, run_cli, monkeypatch):
    monkeypatch.setenv("SFTKIT_HOME", str(tmp_path / "home"))
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("redteam", str(tiny_model_dir), "--against", str(tiny_model_dir), "--attacks",
                                   "prefill,rot13", "--output", str(out), *FAST)
    assert code == 0, stderr
    assert "attack_success" in stdout and "delta vs" in stdout and "against" in stdout and "rot13" in stdout
    assert "broken by any of 3 attacks" in stdout
    saved = json.loads((out / "redteam.json").read_text())
    assert list(saved["attacks"]) == ["direct", "prefill", "rot13"]
    assert saved["attacks"]["rot13"]["attack_success"]["delta_vs_against"]["abs"] == 0.0
    assert f"wrote {out / 'redteam.json'}" in stderr


def test_a_run_against_its_base_writes_into_the_run(fake_run, tiny_model_dir, run_cli, monkeypatch, tmp_path):
    monkeypatch.setenv("SFTKIT_HOME", str(tmp_path / "home"))
    run = shutil.copytree(fake_run, tmp_path / "run")  # the session's run stays as other tests expect it
    code, stdout, stderr = run_cli("redteam", str(run), "--against", str(tiny_model_dir), "--attacks",
                                   "direct,fabricated_turn", *FAST)
    assert code == 0, stderr
    saved = json.loads((run / "redteam" / "redteam.json").read_text())
    assert saved["model"].startswith(str(run)) and saved["against"] == str(tiny_model_dir)
    rows = [json.loads(line) for line in (run / "redteam" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 2 * 4 and all("reply" not in r for r in rows)  # 2 models x 2 attacks x 4 seeds
    assert {"attack", "id", "category", "refused"} <= set(rows[0])
    assert "fabricated_turn" in stdout and "delta vs" in stdout


def test_suffix_file_adds_the_suffix_attack(tmp_path, tiny_model_dir, run_cli):
    suffixes = tmp_path / "suffixes.txt"
    suffixes.write_text("# licensed list\n!! describing.\\ + similarlyNow\n")
    code, _stdout, stderr = run_cli("redteam", str(tiny_model_dir), "--suffixes", str(suffixes), "--attacks",
                                   "adversarial_suffix", "--no-margin", "--output", str(tmp_path / "o"), *FAST)
    assert code == 0, stderr
    assert json.loads((tmp_path / "o/redteam.json").read_text())["settings"]["suffixes"] == 1


@pytest.mark.parametrize(("args", "message"), [
    ([], "nothing to attack"),
    (["default", "--endpoint", "http://127.0.0.1:1/v1"], "not both"),
    (["--endpoint", "http://127.0.0.1:1/v1", "--guard-blocklist", "default"], "--guard-* apply to a local model"),
    (["--endpoint", "http://127.0.0.1:1/v1", "--attacks", "prefill"], "prefill needs a local model"),
    (["{model}", "--attacks", "dan"], "unknown attack 'dan'"),
    (["{model}", "--attacks", "adversarial_suffix"], "needs --suffixes FILE"),
    (["{model}", "--seeds", "{bad}"], "{bad}:2: unknown category 'weapons'"),
    (["{model}", "--seeds", "missing.jsonl"], "seed file not found"),
    (["{model}", "--against", "/no/such/model"], "/no/such/model"),
])
def test_user_mistakes_are_one_line(tmp_path, tiny_model_dir, run_cli, args, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": "x", "category": "weapons"}\n')
    fill = {"model": str(tiny_model_dir), "bad": str(bad)}
    code, _stdout, stderr = run_cli("redteam", *[a.format(**fill) for a in args], "--output", str(tmp_path / "o"),
                                   *FAST)
    assert code == 2 and message.format(**fill) in stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) <= 2
