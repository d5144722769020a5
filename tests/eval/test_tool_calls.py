"""The tool-call metric on hand-made replies, tool-call tasks from conversations, the few-shot baseline, and a
comparison of a tool-calling run whose base model is prompted through the run's own template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sftkit.errors import UserError
from sftkit.eval.tasks import add_shots, load_task
from sftkit.eval.tool_calls import TOOL_CALL_METRICS, parse_tool_calls, score_tool_calls

TEMPLATE = Path(__file__).resolve().parents[2] / "examples" / "chatml_tools.jinja"


def schema(name: str, properties: dict, required: list[str]) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": properties, "required": required}}}


TOOLS = [schema("get_weather", {"city": {"type": "string"}, "unit": {"type": "string"}}, ["city"]),
         schema("add", {"a": {"type": "number"}, "b": {"type": "number"}}, ["a", "b"])]


def reference(*calls: tuple[str, dict]) -> dict:
    return {"role": "assistant", "content": "", "tool_calls": [
        {"id": f"call_{k}", "type": "function", "function": {"name": n, "arguments": a}}
        for k, (n, a) in enumerate(calls, start=1)]}


def tagged(*calls: str) -> str:
    return "\n".join(f"<tool_call>\n{c}\n</tool_call>" for c in calls)


PARIS = reference(("get_weather", {"city": "Paris", "unit": "celsius"}))
SUM = reference(("add", {"a": 2, "b": 3}))
BOTH = reference(("get_weather", {"city": "Paris"}), ("add", {"a": 2, "b": 3}))


@pytest.mark.parametrize("output, ref, scores", [
    # exact: key order and the form of the arguments do not matter
    (tagged('{"name": "get_weather", "arguments": {"unit": "celsius", "city": "Paris"}}'), PARIS, (1, 1, 1)),
    (tagged('{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\", \\"unit\\": \\"celsius\\"}"}'),
     PARIS, (1, 1, 1)),
    ('Sure. {"name": "add", "parameters": {"a": 2, "b": 3}}', SUM, (0, 0, 0)),  # prose before a bare call: none
    ('{"name": "add", "parameters": {"a": 2.0, "b": 3}}', SUM, (1, 1, 1)),  # Llama 3.1 form; 2.0 == 2
    ('[{"name": "add", "arguments": {"a": 2, "b": 3}}, {"name": "get_weather", "arguments": {"city": "Paris"}}]',
     BOTH, (1, 1, 1)),  # a list of calls, in another order
    ("<think>I could <tool_call>{}</tool_call></think>" + tagged('{"name": "add", "arguments": {"a": 2, "b": 3}}'),
     SUM, (1, 1, 1)),  # reasoning is not the call
    # right function, wrong arguments: valid and named, not exact
    (tagged('{"name": "add", "arguments": {"a": "2", "b": 3}}'), SUM, (1, 1, 0)),  # "2" is not 2
    (tagged('{"name": "get_weather", "arguments": {"city": "Paris", "unit": true}}'),
     reference(("get_weather", {"city": "Paris", "unit": 1})), (1, 1, 0)),  # true is not 1
    (tagged('{"name": "get_weather", "arguments": {"city": "paris", "unit": "celsius"}}'), PARIS, (1, 1, 0)),
    # malformed or against the schema: not valid
    (tagged('{"name": "get_weather", "arguments": {"city": "Paris"}'), PARIS, (0, 0, 0)),  # JSON cut short
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par', PARIS, (0, 0, 0)),  # hit max_new_tokens
    (tagged('{"name": "get_weather", "arguments": {"unit": "celsius"}}'), PARIS, (0, 1, 0)),  # city missing
    (tagged('{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius", "day": 1}}'), PARIS,
     (0, 1, 0)),  # undeclared parameter
    (tagged('{"name": "get_time", "arguments": {"city": "Paris"}}'), PARIS, (0, 0, 0)),  # unknown tool
    (tagged('{"name": "add", "arguments": [2, 3]}'), SUM, (0, 1, 0)),
    # a call too many or too few
    (tagged('{"name": "add", "arguments": {"a": 2, "b": 3}}'), BOTH, (1, 0, 0)),
    (tagged('{"name": "add", "arguments": {"a": 2, "b": 3}}', '{"name": "add", "arguments": {"a": 2, "b": 3}}'),
     SUM, (1, 0, 0)),
    ("It is sunny in Paris.", PARIS, (0, 0, 0)),
])
def test_tool_call_metric_on_hand_made_replies(output, ref, scores):
    values, _ = score_tool_calls(output, ref, TOOLS)
    assert (values["valid_call"], values["name_match"], values["exact_call"]) == scores


def test_parse_reports_what_was_wrong():
    assert parse_tool_calls(tagged('{"name": "add", "arguments": {"a": 1}}', "{oops}", '{"arguments": {}}')) == (
        [("add", {"a": 1})],
        ["not valid JSON (Expecting property name enclosed in double quotes)", "a call without a function `name`"])
    assert parse_tool_calls("no call here") == ([], [])


def conversation(city: str, line: int, answer_first: bool = False) -> dict:
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": city}}}
    second = {"id": "c2", "type": "function", "function": {"name": "add", "arguments": {"a": 1, "b": 2}}}
    messages = [{"role": "user", "content": f"Weather in {city}, then 1+2?"},
                {"role": "assistant", "content": "", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": "18"},
                {"role": "assistant", "content": "", "tool_calls": [second]},
                {"role": "tool", "tool_call_id": "c2", "content": "3"},
                {"role": "assistant", "content": f"18 in {city}; 3."}]
    return {"messages": messages, "tools": TOOLS, "source": "tools.jsonl", "line": line}


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_conversations_with_calls_make_one_item_per_calling_turn(tmp_path):
    chat = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    task = load_task(str(write_rows(tmp_path / "t.jsonl", [conversation("Paris", 7), chat])))
    assert (task.kind, task.headline, len(task.items)) == ("tool_call", "exact_call", 2)
    first, second = task.items
    assert [m["role"] for m in first.messages] == ["user"] and first.reference["tool_calls"][0]["id"] == "c1"
    assert [m["role"] for m in second.messages] == ["user", "assistant", "tool"]
    assert second.reference["tool_calls"][0]["function"]["name"] == "add"
    assert (first.source, first.line, first.tools) == ("tools.jsonl", 7, TOOLS)  # origin kept from RUN/data rows


def test_few_shot_tool_prompts_show_calls_and_list_every_tool(tmp_path):
    test = load_task(str(write_rows(tmp_path / "test.jsonl", [conversation("Paris", 1)])))
    extra = schema("get_time", {"city": {"type": "string"}}, ["city"])
    pool_rows = [{"messages": conversation(city, i)["messages"][:2], "tools": [extra, *TOOLS]}
                 for i, city in enumerate(["Oslo", "Rome"])]
    pool = load_task(str(write_rows(tmp_path / "train.jsonl", pool_rows))).items
    shot = add_shots(test, pool, 2)
    assert shot.kind == "tool_call" and shot.name.endswith("(2-shot)")
    item = shot.items[0]
    # both shots (each its question, then its reference call, in the seeded order), then the item's own prompt
    drawn = [item.messages[0]["content"], item.messages[2]["content"]]
    assert sorted(drawn) == ["Weather in Oslo, then 1+2?", "Weather in Rome, then 1+2?"]
    assert item.messages[1] == next(p.reference for p in pool if p.messages[0]["content"] == drawn[0])
    assert item.messages[4:] == test.items[0].messages and len(item.messages) == 5
    assert [t["function"]["name"] for t in item.tools] == ["get_weather", "add", "get_time"]


def test_base_model_through_smollm2_template_is_refused_naming_it(tokenizer, tiny_model):
    from sftkit.eval.tool_calls import run_tool_call_task, tool_call_items

    items = tool_call_items(conversation("Paris", 3)["messages"], TOOLS, "t.jsonl", 3)
    with pytest.raises(UserError) as info:
        run_tool_call_task(tiny_model, tokenizer, items, 4, 4)
    assert info.value.format().startswith(f"t.jsonl:3: the chat template of {tokenizer.name_or_path} does not "
                                          "render the `tools` list")


@pytest.fixture
def tool_run(tmp_path, fake_run):
    """The fake run of tests/eval/conftest.py trained on tool conversations with the shipped template."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(fake_run, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["model"]["chat_template"] = str(TEMPLATE)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "tokenizer").mkdir()
    (run / "tokenizer" / "chat_template.jinja").write_text(TEMPLATE.read_text())
    (run / "adapter" / "chat_template.jinja").write_text(TEMPLATE.read_text())
    cities = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Seoul"]
    write_rows(run / "data" / "train.jsonl", [conversation(c, i) for i, c in enumerate(cities[:4])])
    write_rows(run / "data" / "test.jsonl", [conversation(c, i) for i, c in enumerate(cities[4:])])
    return run


def test_compare_of_a_tool_run_scores_calls_and_prompts_the_base_through_the_run_template(tool_run, tmp_path,
                                                                                          monkeypatch, tokenizer):
    from sftkit.eval.compare import run_compare

    original = tokenizer.chat_template

    monkeypatch.setenv("SFTKIT_HOME", str(tmp_path / "home"))
    comparison = run_compare(tool_run, suite=[], shots=1)
    assert comparison["test"] | {"path": None} == {"path": None, "n": 4, "metric": "exact_call", "kind": "tool_call",
                                                   "shots": 1, "shots_from": str(tool_run / "data" / "train.jsonl")}
    assert set(comparison["metrics"]["tuned"]) == {"valid_call", "name_match", "exact_call"}
    rows = [json.loads(line) for line in (tool_run / "compare" / "predictions.jsonl").read_text().splitlines()]
    assert {r["model"] for r in rows} == {"base_zero_shot", "base_k_shot", "tuned"} and len(rows) == 12
    for r in rows:  # the base model, too, sees the tools as the run's template lists them
        assert '<tools>\n{"name":"get_weather"' in r["prompt"] and r["prompt"].endswith("<|im_start|>assistant\n")
        assert r["reference"] in ('[{"name": "get_weather", "arguments": {"city": "Cairo"}}]',
                                  '[{"name": "get_weather", "arguments": {"city": "Seoul"}}]',
                                  '[{"name": "add", "arguments": {"a": 1, "b": 2}}]')
    from sftkit.generation import render_prompt

    expected = add_shots(load_task(str(tool_run / "data" / "test.jsonl")),
                         load_task(str(tool_run / "data" / "train.jsonl")).items, 1, seed=1234)
    tokenizer.chat_template = TEMPLATE.read_text()
    try:
        assert [r["prompt"] for r in rows if r["model"] == "base_k_shot"] == [
            render_prompt(tokenizer, item.messages, item.tools) for item in expected.items]
    finally:
        tokenizer.chat_template = original


def test_compare_prints_every_rate_with_its_interval_per_model():
    from rich.console import Console

    from sftkit.eval.report import print_comparison

    def rate(value, low, high):
        return {"value": value, "ci_low": low, "ci_high": high, "n": 60}

    metrics = {"base_zero_shot": dict(zip(TOOL_CALL_METRICS, [rate(0.05, 0.0, 0.117)] * 3)),
               "base_k_shot": {"valid_call": rate(0.4, 0.283, 0.517), "name_match": rate(0.35, 0.233, 0.467),
                               "exact_call": rate(0.2, 0.1, 0.3)},
               "tuned": {"valid_call": rate(1.0, 1.0, 1.0), "name_match": rate(0.95, 0.883, 1.0),
                         "exact_call": rate(0.9, 0.817, 0.967)}}
    comparison = {"test": {"metric": "exact_call", "n": 60, "shots": 3, "kind": "tool_call"},
                  "accuracy": {k: v["exact_call"] for k, v in metrics.items()}, "best_baseline": "base_k_shot",
                  "gain_over_prompting": {"abs": 0.7, "rel": 3.5, "ci_low": 0.55, "ci_high": 0.833},
                  "metrics": metrics}
    console = Console(record=True, width=200)
    print_comparison(comparison, console)
    lines = [" ".join(line.split()) for line in console.export_text().splitlines()]
    assert "tool calls (rates with 95% CI)" in lines
    assert "model valid call name match exact call" in lines
    assert "base, 3-shot 0.400 [0.283, 0.517] 0.350 [0.233, 0.467] 0.200 [0.100, 0.300]" in lines
    assert "fine-tuned, zero-shot 1.000 [1.000, 1.000] 0.950 [0.883, 1.000] 0.900 [0.817, 0.967]" in lines
