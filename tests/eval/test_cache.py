import json
import os
import shutil

import pytest

from sftkit.eval import cache
from sftkit.eval.evaluator import Evaluator, evaluate
from sftkit.eval.settings import EvalSettings
from sftkit.eval.tasks import load_task


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SFTKIT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def count_loads(monkeypatch):
    import sftkit.models

    calls = []
    real = sftkit.models.load_for_inference

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(sftkit.models, "load_for_inference", counting)
    return calls


def test_second_run_is_a_cache_hit_without_loading_the_model(home, tiny_model_dir, mc_file, count_loads):
    task = load_task(str(mc_file))
    first = Evaluator(str(tiny_model_dir)).run(task)
    second = Evaluator(str(tiny_model_dir)).run(load_task(str(mc_file)))
    assert count_loads == [str(tiny_model_dir)]
    assert first.info["cached"] is False and second.info["cached"] is True
    assert second.values == first.values
    assert [r["choice_logprobs"] for r in second.predictions] == [r["choice_logprobs"] for r in first.predictions]
    assert len(list((home / "eval_cache").glob("*.json"))) == 1


def test_changed_settings_task_or_model_miss_the_cache(home, tiny_model_dir, tmp_path, mc_file, count_loads):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    Evaluator(str(model_dir)).run(load_task(str(mc_file)))
    # generation settings are part of the key; batch sizes are not
    Evaluator(str(model_dir), EvalSettings(scoring_batch_size=3)).run(load_task(str(mc_file)))
    assert len(count_loads) == 1
    Evaluator(str(model_dir), EvalSettings(max_new_tokens=5)).run(load_task(str(mc_file)))
    assert len(count_loads) == 2
    # an edited task file
    rows = mc_file.read_text().splitlines()
    row = json.loads(rows[0])
    row["answer"] = (row["answer"] + 1) % 3
    mc_file.write_text("\n".join([json.dumps(row)] + rows[1:]) + "\n")
    Evaluator(str(model_dir)).run(load_task(str(mc_file)))
    assert len(count_loads) == 3
    # re-saved weights (new modification time)
    weights = model_dir / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    result = Evaluator(str(model_dir)).run(load_task(str(mc_file)))
    assert len(count_loads) == 4 and result.info["cached"] is False
    assert len(list((home / "eval_cache").glob("*.json"))) == 4


def test_run_directories_and_no_cache_are_never_cached(home, fake_run, tiny_model_dir):
    assert cache.model_fingerprint(str(fake_run)) is None
    assert Evaluator(str(fake_run)).fingerprint is None
    assert Evaluator(str(tiny_model_dir), use_cache=False).fingerprint is None
    assert cache.model_fingerprint(str(tiny_model_dir)) == cache.model_fingerprint(str(tiny_model_dir))


def test_evaluate_writes_eval_json_and_predictions(home, tiny_model_dir, mc_file, text_file, tmp_path):
    tasks = [load_task(str(mc_file)), load_task(f"perplexity:{text_file}")]
    report = evaluate(str(tiny_model_dir), tasks, tmp_path / "out")
    on_disk = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    mc = report["tasks"][str(mc_file)]
    assert set(mc) == {"acc", "acc_norm"}
    assert mc["acc"]["n"] == 12 and mc["acc"]["ci_low"] <= mc["acc"]["value"] <= mc["acc"]["ci_high"]
    ppl = report["tasks"][f"perplexity:{text_file}"]["perplexity"]
    assert ppl["n"] == 3 and ppl["value"] > 1
    rows = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 15
    assert rows[0]["task"] == str(mc_file) and rows[0]["prompt"] == "Question 0: which word?"
    assert len(rows[0]["choice_logprobs"]) == 3 and rows[0]["pick"] in (0, 1, 2)
    assert report["settings"]["max_new_tokens"] == 32 and report["model"] == str(tiny_model_dir)


def test_headline_metric_is_not_part_of_the_key(home, tiny_model_dir, tmp_path, count_loads):
    data = tmp_path / "gen.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "Say hi"},
                                             {"role": "assistant", "content": "hi"}]}) + "\n")
    first = Evaluator(str(tiny_model_dir), EvalSettings(max_new_tokens=3)).run(load_task(str(data)))
    second = Evaluator(str(tiny_model_dir), EvalSettings(max_new_tokens=3, metric="token_f1")).run(load_task(str(data)))
    assert len(count_loads) == 1 and second.info["cached"] is True
    assert (first.headline, second.headline) == ("normalized_exact_match", "token_f1")
    assert set(second.values) == {"exact_match", "normalized_exact_match", "contains", "token_f1"}
