"""The Ollama Modelfile and its Go template: family found by byte-identical rendering against the Jinja template
(with and without system turn, single- and multi-turn, with the generation prompt), default system prompt,
stops, and the error for a template of no known family."""

from __future__ import annotations

import copy

import pytest

from sftkit.errors import UserError
from sftkit.export import ollama

LLAMA3_JINJA = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
SMOLLM_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


@pytest.fixture
def llama3_tokenizer(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = LLAMA3_JINJA
    return tok


def test_smollm2_template_is_chatml_with_its_default_system_prompt(tokenizer):
    family, template, system = ollama.find_family(tokenizer, "")
    assert (family, system) == ("chatml", SMOLLM_SYSTEM)
    assert template == ollama.FAMILY_TEMPLATES["chatml"]
    check = ollama.check_template(template, tokenizer, system, "")
    assert check.passed and check.num_conversations == 4


def test_ollama_prompt_prepends_the_default_system_only_without_a_system_turn(tokenizer):
    template = ollama.FAMILY_TEMPLATES["chatml"]
    user = [{"role": "user", "content": "Hi"}]
    assert ollama.ollama_prompt(template, user, "Be brief.") == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    own = [{"role": "system", "content": "Mine."}, *user]
    assert ollama.ollama_prompt(template, own, "Be brief.").startswith("<|im_start|>system\nMine.<|im_end|>\n")


def test_without_the_default_system_prompt_the_chatml_check_fails_at_the_first_character(tokenizer):
    check = ollama.check_template(ollama.FAMILY_TEMPLATES["chatml"], tokenizer, None, "")
    assert not check.passed
    assert check.first_mismatch["at_character"] == len("<|im_start|>")  # "user" where Jinja says "system"


def test_llama3_template_matches_with_the_bos_the_runtime_adds(llama3_tokenizer):
    bos = llama3_tokenizer.bos_token
    assert ollama.default_system(llama3_tokenizer) is None
    family, template, system = ollama.find_family(llama3_tokenizer, bos)
    assert (family, system) == ("llama3", None)
    # without the BOS the runtime prepends, the rendering is one token short of the Jinja text
    assert not ollama.check_template(template, llama3_tokenizer, None, "").passed


def test_unknown_family_is_one_clear_error(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = "{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}### assistant:"
    with pytest.raises(UserError, match="no family sftkit knows .*--template FILE"):
        ollama.find_family(tok, "")


def test_user_template_that_differs_is_reported_with_both_texts(tokenizer):
    wrong = "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>{{ end }}<|im_start|>assistant\n"
    check = ollama.check_template(wrong, tokenizer, SMOLLM_SYSTEM, "")
    assert not check.passed
    assert check.first_mismatch["jinja"].startswith("\n") and check.first_mismatch["ollama"].startswith("<|im_start|>")


def test_modelfile_text():
    text = ollama.modelfile("model.gguf", "T", ["<|im_end|>", "<|endoftext|>"], "Be brief.", 256)
    assert text == ('FROM ./model.gguf\nTEMPLATE """T"""\nSYSTEM """Be brief."""\nPARAMETER stop "<|im_end|>"\n'
                    'PARAMETER stop "<|endoftext|>"\nPARAMETER num_ctx 256\n')
    assert ollama.modelfile("m.gguf", "T", [], None, None) == 'FROM ./m.gguf\nTEMPLATE """T"""\n'
    with pytest.raises(UserError, match='contains """'):
        ollama.modelfile("m.gguf", 'x"""y', [], None, None)


def test_model_name_is_what_ollama_create_accepts():
    assert ollama.model_name("My Run (v2)") == "my-run-v2"
    assert ollama.model_name("???") == "sftkit-model"
