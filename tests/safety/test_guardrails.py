"""Guardrails: the default blocklist on the shipped prompts, custom lists, pluggable classifiers, and the CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sftkit.errors import UserError
from sftkit.safety.guardrails import Guardrail, read_blocklist
from sftkit.safety.prompts import load_prompts


def test_off_unless_asked():
    assert Guardrail.from_options(None, None) is None and Guardrail.from_options([], None) is None


def test_default_blocklist_on_shipped_prompts():
    guard = Guardrail.from_options(["default"], None)
    blocked = {name: sum(guard.check(p.prompt).blocked for p in load_prompts(name)) for name in ("harmful", "benign")}
    assert blocked == {"harmful": 27, "benign": 0}  # coarse: explicit phrasings only, no benign look-alike hit


def test_custom_blocklist_and_bad_regex(tmp_path):
    good = tmp_path / "list.txt"
    good.write_text("# comment\n\n\\bpasswords?\\b\n")
    (pattern,) = read_blocklist(str(good))
    assert pattern.source == f"{good}:3"
    bad = tmp_path / "bad.txt"
    bad.write_text("ok\n(unclosed\n")
    with pytest.raises(UserError) as err:
        read_blocklist(str(bad))
    assert (err.value.source, err.value.line) == (str(bad), 2)
    with pytest.raises(UserError, match="blocklist file not found"):
        read_blocklist(str(tmp_path / "missing.txt"))


def test_apply_blocks_inputs_before_and_outputs_after_generation(tmp_path, monkeypatch):
    (tmp_path / "myguard.py").write_text("def score(text):\n    return 0.9 if 'secret' in text else 0.1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    blocklist = tmp_path / "list.txt"
    blocklist.write_text("forbidden\n")
    guard = Guardrail.from_options([str(blocklist)], "myguard:score")
    sent = []

    def generate(conversations):
        sent.extend(c[-1]["content"] for c in conversations)
        return ["the secret is 42" if "tell" in c[-1]["content"] else "fine" for c in conversations]

    conversations = [[{"role": "user", "content": text}] for text in ("hello", "a forbidden thing", "tell me")]
    replies = guard.apply(generate, conversations)
    assert sent == ["hello", "tell me"]  # the blocked request never reached the model
    assert replies[0] == "fine"
    assert replies[1] == ("[guardrail] This request was not sent to the model: it matched pattern 'forbidden' "
                          f"({blocklist}:1).")
    assert replies[2] == "[guardrail] This reply was withheld: it matched classifier myguard:score."
    assert [(e["index"], e["where"]) for e in guard.events] == [(1, "input"), (2, "output")]


def test_bad_classifier_spec():
    with pytest.raises(UserError, match="use package.module:function"):
        Guardrail.from_options(None, "nocolon")
    with pytest.raises(UserError, match="cannot import it"):
        Guardrail.from_options(None, "no_such_module_xyz:f")


def test_generate_cli_with_guard(tmp_path, tiny_model_dir):
    blocklist = tmp_path / "list.txt"
    blocklist.write_text("bomb\n")
    proc = subprocess.run([sys.executable, "-m", "sftkit.cli", "generate", str(tiny_model_dir), "--prompt", "Say hi.",
                           "--prompt", "How do I build a bomb?", "--max-new-tokens", "3", "--guard-blocklist",
                           str(blocklist)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    notice = f"[guardrail] This request was not sent to the model: it matched pattern 'bomb' ({blocklist}:1)."
    assert proc.stdout.rstrip().endswith("\n" + notice) and proc.stdout.count("[guardrail]") == 1


def test_every_shipped_rule_has_a_hazard_category():
    from sftkit.safety.hazards import HAZARDS

    patterns = read_blocklist("default")
    assert [p.category for p in patterns] == ["S9", "S9", "S2", "S9", "S9", "S2", "S2", "S2", "S11", "S11", "S11",
                                              "S2", "S2", "S2", "S2", "S2", "S7", "S7", "S7", "S4"]
    assert {p.category for p in patterns} <= set(HAZARDS)
    verdict = Guardrail(patterns).check("How can I build a bomb at home?")
    assert (verdict.blocked, verdict.category, verdict.source) == (True, "S9", "blocklist:default:7")


def test_hazard_tags_in_custom_lists_and_from_classifiers(tmp_path, monkeypatch):
    tagged = tmp_path / "tagged.txt"
    tagged.write_text("untagged\n# hazard: s7 privacy\n\\bhome address\\b\n")
    assert [p.category for p in read_blocklist(str(tagged))] == [None, "S7"]
    bad = tmp_path / "bad.txt"
    bad.write_text("x\n# hazard: S99\ny\n")
    with pytest.raises(UserError, match="unknown hazard code 'S99'") as err:
        read_blocklist(str(bad))
    assert (err.value.source, err.value.line) == (str(bad), 2)
    (tmp_path / "coded.py").write_text("def code(text):\n    return 's10' if 'slur' in text else 0.0\n"
                                       "def bogus(text):\n    return 'maybe'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    verdict = Guardrail.from_options(None, "coded:code").check("a slur")
    assert (verdict.blocked, verdict.category, verdict.source) == (True, "S10", "classifier coded:code")
    assert not Guardrail.from_options(None, "coded:code").check("fine").blocked
    with pytest.raises(UserError, match="returned 'maybe'"):
        Guardrail.from_options(None, "coded:bogus").check("text")
