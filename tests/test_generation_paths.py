"""Every command that generates answers a prompt the same way: `sftkit generate` prints exactly what `eval`
stores, and `chat`, `compare` and `safety` agree, on models whose end-of-turn token is not the tokenizer's
EOS. Before one path served them all, `generate`/`chat` stopped on the tokenizer's EOS only and `eval` also on
`generation_config.eos_token_id`, so these models answered differently in the CLI from what eval scored.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
import sys

import pytest
import torch

from tests.test_generation import END_OF_TEXT, END_OF_TURN, PROMPTS, greedy_reference, untied_model, user

MAX_NEW_TOKENS = 8
STOP_AT = "stop_at"  # stands for the token the reply to PROMPTS[0] would have as its third
# name: (swap the output rows of STOP_AT and <|im_end|>, tokenizer EOS, generation_config.eos_token_id)
VARIANTS = {
    "configured_end_of_turn": (True, "<|endoftext|>", [END_OF_TEXT, END_OF_TURN]),
    "template_end_of_turn_only": (True, "<|endoftext|>", END_OF_TEXT),
    "configured_plain_token": (False, None, [END_OF_TURN, STOP_AT]),
}


@pytest.fixture(scope="module")
def cases(tmp_path_factory, tokenizer):
    """{variant: model dir} and the replies every path must give: PROMPTS[0] ends after two tokens (where the
    model emits <|im_end|>, or the configured plain token), the others run to MAX_NEW_TOKENS."""
    model = untied_model()
    natural = [greedy_reference(model, tokenizer, user(p), MAX_NEW_TOKENS, min_margin=1e-4) for p in PROMPTS]
    stop_at = natural[0][2]
    assert [len(n) for n in natural] == [MAX_NEW_TOKENS] * 3  # no <|im_end|> in the unswapped replies
    assert all(stop_at not in n for n in (natural[0][:2], natural[1], natural[2]))
    assert all(END_OF_TEXT not in n for n in natural)
    expected = [tokenizer.decode(n, skip_special_tokens=True) for n in (natural[0][:2], natural[1], natural[2])]
    dirs = {}
    for name, (swap, eos, configured) in VARIANTS.items():
        variant = copy.deepcopy(model)
        if swap:  # the model now emits <|im_end|> wherever it would emit stop_at; logits are only permuted
            with torch.no_grad():
                head = variant.lm_head.weight
                head[[stop_at, END_OF_TURN]] = head[[END_OF_TURN, stop_at]].clone()
        ids = [stop_at if i == STOP_AT else i for i in configured] if isinstance(configured, list) else configured
        variant.config.eos_token_id = variant.generation_config.eos_token_id = ids
        variant_tokenizer = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
        if eos is not None:
            variant_tokenizer.eos_token = eos
        dirs[name] = tmp_path_factory.mktemp(name)
        variant.save_pretrained(dirs[name])
        variant_tokenizer.save_pretrained(dirs[name])
    return dirs, expected


def write_conversations(path, prompts):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"messages": [*user(p), {"role": "assistant", "content": "x"}]}) + "\n"
                            for p in prompts))
    return path


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_path_gives_the_reply_eval_stored(tmp_path, cases, variant, run_cli, monkeypatch):
    from sftkit.models import load_tokenizer
    from sftkit.safety.evaluate import SafetySettings, evaluate_model
    from sftkit.safety.prompts import SafetyPrompt

    dirs, expected = cases
    model_dir = str(dirs[variant])
    if variant != "configured_plain_token":
        assert load_tokenizer(model_dir).eos_token_id == END_OF_TEXT  # the end-of-turn token is not the EOS
    task = write_conversations(tmp_path / "task.jsonl", PROMPTS)
    code, _, err = run_cli("eval", "--model", model_dir, "--task", str(task), "--output", str(tmp_path / "eval"),
                           "--max-new-tokens", str(MAX_NEW_TOKENS), "--no-cache")
    assert code == 0, err
    stored = [json.loads(line)["output"] for line in (tmp_path / "eval" / "predictions.jsonl").open()]
    assert stored == expected

    prompts = [arg for p in PROMPTS for arg in ("--prompt", p)]
    code, out, err = run_cli("generate", model_dir, *prompts, "--max-new-tokens", str(MAX_NEW_TOKENS))
    assert code == 0, err
    assert out == "".join(reply + "\n" for reply in stored)

    monkeypatch.setattr(sys, "stdin", io.StringIO(PROMPTS[0] + "\n"))
    code, out, err = run_cli("chat", model_dir, "--max-new-tokens", str(MAX_NEW_TOKENS))
    assert code == 0, err
    assert out == f"you> model> {expected[0].strip()}\nyou> "

    run = tmp_path / "run"
    shutil.copytree(model_dir, run / "merged")
    (run / "summary.json").write_text(json.dumps({"base_model": model_dir, "method": "full"}))
    write_conversations(run / "data" / "test.jsonl", PROMPTS)
    code, _, err = run_cli("compare", str(run), "--shots", "0", "--no-suite", "--max-new-tokens",
                           str(MAX_NEW_TOKENS), "--no-cache")
    assert code == 0, err
    rows = [json.loads(line) for line in (run / "compare" / "predictions.jsonl").open()]
    assert [(r["model"], r["output"]) for r in rows] == [(m, e) for m in ("base_zero_shot", "tuned") for e in expected]

    safety_prompts = [SafetyPrompt(str(i), "test", p) for i, p in enumerate(PROMPTS)]
    result = evaluate_model(model_dir, safety_prompts, None, SafetySettings(max_new_tokens=MAX_NEW_TOKENS),
                            use_cache=False)
    assert result["replies"] == [e.strip() for e in expected]
