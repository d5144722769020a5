"""`curate()` end to end on a planted data set: precision and recall of every detector, every input row in
exactly one output, determinism, pass-through of row fields, the report, the CLI, and training on the result."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from sftkit.curate import CurateConfig, curate, output_paths
from tests.curate.planted import planted, write_jsonl

BAD_LINES = ("{oops not json", "[1, 2, 3]")
DETECTORS = ("exact_duplicate", "contaminated", "empty_response", "repeats_prompt", "repetitive", "truncated",
             "refusal", "too_long", "pii_email", "pii_phone", "pii_credit_card", "pii_secret")


def config(eval_path, **changes) -> CurateConfig:
    cfg = CurateConfig(**{"workers": 1, **changes})
    cfg.decontam.eval = [str(eval_path)]
    return cfg


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("curate")
    rows, truth, eval_rows = planted()
    data = write_jsonl(tmp / "mixed.jsonl", rows, BAD_LINES)
    eval_path = write_jsonl(tmp / "eval.jsonl", eval_rows)
    report = curate([str(data)], tmp / "out.jsonl", config(eval_path))
    kept = [json.loads(line) for line in open(tmp / "out.jsonl")]
    rejects = [json.loads(line) for line in open(tmp / "out.rejects.jsonl")]
    return {"tmp": tmp, "rows": rows, "truth": truth, "data": data, "eval": eval_path, "report": report,
            "kept": kept, "rejects": rejects}


def predicted(rejects: list[dict]) -> dict[str, set[str]]:
    out = defaultdict(set)
    for entry in rejects:
        if isinstance(entry["row"], dict):
            for reason in entry["reasons"]:
                out[reason].add(entry["row"]["id"])
    return out


@pytest.mark.parametrize("detector", DETECTORS)
def test_precision_and_recall_on_planted_rows(run, detector):
    found, truth = predicted(run["rejects"])[detector], run["truth"][detector]
    true_positives = len(found & truth)
    assert len(truth) >= 11
    assert true_positives / len(truth) >= 0.95, f"recall: missed {sorted(truth - found)}"
    assert true_positives / max(1, len(found)) >= 0.95, f"precision: wrongly flagged {sorted(found - truth)}"


def test_near_duplicates_drop_exactly_one_of_each_planted_pair(run):
    found = predicted(run["rejects"])["near_duplicate"]
    pairs = run["truth"]["near_pairs"]
    caught = sum(1 for a, b in pairs if (a in found) != (b in found))
    assert caught / len(pairs) >= 0.95
    assert len(found - run["truth"]["near_duplicate"]) / max(1, len(found)) <= 0.05


def test_clean_rows_are_kept_unchanged(run):
    clean = {r["id"]: r for r in run["rows"] if r["id"].startswith("clean-")}
    kept = {r["id"]: r for r in run["kept"]}
    assert set(clean) <= set(kept)
    assert all(kept[i] == clean[i] for i in clean)  # ids, metadata and message fields pass through
    survivors = {x for pair in run["truth"]["near_pairs"] for x in pair if x in kept}
    assert len(survivors) == len(run["truth"]["near_pairs"])  # one of each near-duplicate pair
    assert set(kept) == set(clean) | survivors


def test_every_input_row_is_in_exactly_one_output(run):
    input_lines = run["data"].read_text().splitlines()
    assert len(run["kept"]) + len(run["rejects"]) == len(input_lines) == len(run["rows"]) + len(BAD_LINES)
    ids = [r["id"] for r in run["kept"]] + [e["row"]["id"] for e in run["rejects"] if isinstance(e["row"], dict)]
    assert sorted(ids) == sorted(r["id"] for r in run["rows"])
    unparsed = [(e["row"], e["line"], e["stage"], e["reason"]) for e in run["rejects"] if not isinstance(e["row"], dict)]
    assert unparsed == [(BAD_LINES[0], len(input_lines) - 1, "validate", "malformed_json"),
                        (BAD_LINES[1], len(input_lines), "validate", "not_an_object")]
    lines = [(e["source"], e["line"]) for e in run["rejects"]]
    assert lines == sorted(lines)  # input order


def test_rejects_name_stage_primary_reason_and_all_reasons(run):
    by_id = {e["row"]["id"]: e for e in run["rejects"] if isinstance(e["row"], dict)}
    exact = by_id["exact-0"]
    assert exact["stage"] == "exact_dedup" and exact["reason"] == "exact_duplicate"
    assert exact["details"]["exact_duplicate"].startswith("same normalised text as ")
    assert by_id["long-0"]["reasons"][0] == "too_long" and by_id["long-0"]["stage"] == "quality"
    assert by_id["contam-1"]["stage"] == "decontaminate"
    assert by_id["card-0"]["stage"] == "pii" and "4111" not in json.dumps(by_id["card-0"]["details"])


def test_report_counts_histograms_and_examples(run):
    report = run["report"]
    assert [s["stage"] for s in report["stages"]] == ["validate", "exact_dedup", "near_dedup", "semantic_dedup",
                                                      "quality", "decontaminate", "pii", "select"]
    assert report["rows_read"] == len(run["rows"]) + len(BAD_LINES)
    assert report["rows_kept"] == len(run["kept"])
    assert sum(s["dropped"] for s in report["stages"]) == report["rows_rejected"] == len(run["rejects"])
    for before, after in zip(report["stages"], report["stages"][1:]):
        assert after["rows_in"] == before["rows_out"]
    hist = report["length_histograms"]
    assert sum(hist["conversation_before"]) == len(run["rows"]) and sum(hist["conversation_after"]) == len(run["kept"])
    assert set(report["examples"]) >= {"malformed_json", "not_an_object", *DETECTORS, "near_duplicate"}
    assert all(1 <= len(v) <= 3 for v in report["examples"].values())
    assert "@example.org" not in json.dumps(report["examples"])
    on_disk = json.loads(output_paths(run["tmp"] / "out.jsonl")[2].read_text())
    assert on_disk["rows_kept"] == report["rows_kept"]


def test_same_input_and_config_give_identical_outputs(run, tmp_path):
    curate([str(run["data"])], tmp_path / "again.jsonl", config(run["eval"], workers=2))
    assert (tmp_path / "again.jsonl").read_bytes() == (run["tmp"] / "out.jsonl").read_bytes()
    again = (tmp_path / "again.rejects.jsonl").read_text()
    assert again == (run["tmp"] / "out.rejects.jsonl").read_text()


def test_feature_pass_is_the_same_with_any_number_of_workers(run):
    from sftkit.curate.features import compute_features
    from sftkit.data.dataset import load_conversations

    examples, _ = load_conversations(str(run["data"]), on_bad_row="skip")
    cfg = CurateConfig()
    one = compute_features(examples, cfg, batch_rows=50, workers=1)
    two = compute_features(examples, cfg, batch_rows=50, workers=2)
    assert two.workers == 2
    assert one.keys == two.keys and (one.signatures == two.signatures).all() and one.flags == two.flags
    assert (one.heuristic == two.heuristic).all()


def test_pii_mask_and_keep(run, tmp_path):
    curate([str(run["data"])], tmp_path / "masked.jsonl", config(run["eval"], pii="mask"))
    kept = {r["id"]: r for r in map(json.loads, open(tmp_path / "masked.jsonl"))}
    assert "[EMAIL]" in kept["email-0"]["messages"][1]["content"]
    assert "[CREDIT_CARD]" in kept["card-0"]["messages"][0]["content"]
    assert all("@example.org" not in json.dumps(r) for r in kept.values())
    report = curate([str(run["data"])], tmp_path / "kept.jsonl", config(run["eval"], pii="keep"))
    pii_stage = next(s for s in report["stages"] if s["stage"] == "pii")
    assert pii_stage["dropped"] == 0 and pii_stage["flagged_kept"] == 48
    assert any(k.get("flags", {}).get("pii_email") for k in report["kept"])


def test_mixed_formats_get_a_messages_field(tmp_path):
    chats = write_jsonl(tmp_path / "a.jsonl", [{"id": 1, "messages": [
        {"role": "user", "content": "Name a fruit that is yellow."}, {"role": "assistant", "content": "A banana."}]}])
    alpaca = write_jsonl(tmp_path / "b.jsonl", [{"id": 2, "instruction": "Name a red fruit.", "input": "",
                                                 "output": "A cherry.", "source": "x"}])
    report = curate([str(chats), str(alpaca)], tmp_path / "out.jsonl", CurateConfig(workers=1))
    rows = [json.loads(line) for line in open(tmp_path / "out.jsonl")]
    assert report["output_format"] == "messages"
    assert rows[0] == {"id": 1, "messages": [{"role": "user", "content": "Name a fruit that is yellow."},
                                             {"role": "assistant", "content": "A banana."}]}
    assert rows[1]["instruction"] == "Name a red fruit." and rows[1]["source"] == "x"
    assert rows[1]["messages"][1] == {"role": "assistant", "content": "A cherry."}
    from sftkit.data.dataset import load_conversations

    examples, data_report = load_conversations(str(tmp_path / "out.jsonl"))
    assert len(examples) == 2 and dict(data_report.formats) == {"messages": 2}


def test_bigbench_rows_kept_in_their_format_render_the_same_prompt(tmp_path):
    """A task.json curated in `keep` format carries its task prefix, so re-reading gives the same chats."""
    from sftkit.data.dataset import load_conversations

    task = {"task_prefix": "Classify the intent.\n", "example_input_prefix": "Utterance: ",
            "examples": [{"input": text, "target_scores": {"music": 1, "alarm": 0}} for text in (
                "play the new album by the beatles in the kitchen", "wake me at seven tomorrow morning",
                "put some relaxing jazz on for dinner", "set an alarm for the meeting at noon")]}
    (tmp_path / "task.json").write_text(json.dumps(task))
    report = curate([str(tmp_path / "task.json")], tmp_path / "out.jsonl", CurateConfig(workers=1))
    assert report["output_format"] == "keep"
    before, _ = load_conversations(str(tmp_path / "task.json"))
    after, data_report = load_conversations(str(tmp_path / "out.jsonl"))
    assert dict(data_report.formats) == {"bigbench": len(after)} and len(after) >= 1
    original = {ex.messages[0]["content"]: ex.messages for ex in before}
    for ex in after:
        assert ex.messages[0]["content"].startswith("Classify the intent.\nUtterance: ")
        assert ex.messages == original[ex.messages[0]["content"]]


def test_output_may_not_overwrite_an_input(run):
    from sftkit.errors import UserError

    with pytest.raises(UserError, match="would overwrite the input"):
        curate([str(run["data"])], run["data"], CurateConfig())


def test_cli_prints_the_table_and_writes_both_files(run, tmp_path):
    from typer.testing import CliRunner

    from sftkit.cli import app

    out = tmp_path / "cli.jsonl"
    result = CliRunner().invoke(app, ["data", "curate", str(run["data"]), "-o", str(out), "--decontaminate",
                                      str(run["eval"]), "--report", str(tmp_path / "r.json"), "--set", "workers=1"])
    assert result.exit_code == 0, result.output
    for text in ("data curate:", "exact_dedup", "near_dedup", "quality", "decontaminate", "pii",
                 "an example of each rejection reason"):
        assert text in result.output
    assert out.read_bytes() == (run["tmp"] / "out.jsonl").read_bytes()
    assert (tmp_path / "cli.rejects.jsonl").exists() and json.loads((tmp_path / "r.json").read_text())["rows_read"]


def test_cli_config_mistakes_exit_2_with_did_you_mean(run, tmp_path, monkeypatch, capsys):
    import sys

    from sftkit.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("curate:\n  near:\n    treshold: 0.7\n  pii: sometimes\n")
    monkeypatch.setattr(sys, "argv", ["sftkit", "data", "curate", str(run["data"]), "-o", str(tmp_path / "o.jsonl"),
                                      "--config", str(cfg)])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "did you mean 'curate.near.threshold'?" in err and "curate.pii.action" in err


def test_curated_file_trains(run, tmp_path, tiny_model_dir):
    from sftkit.recipes.sft_config import SFTConfig
    from sftkit.recipes.sft import train

    cfg = SFTConfig.model_validate({
        "model": {"name": str(tiny_model_dir)},
        "data": {"train_path": str(run["tmp"] / "out.jsonl"), "val_fraction": 0.1, "max_length": 256},
        "train": {"max_steps": 2, "micro_batch_size": 4, "eval_every": 100, "save_every": 100},
        "output_dir": str(tmp_path / "run"),
    })
    summary = train(cfg, quiet=True)
    assert (tmp_path / "run" / "summary.json").exists()
    assert summary is not None
