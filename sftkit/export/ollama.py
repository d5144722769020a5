"""The Ollama export: a `Modelfile` beside the GGUF, with a Go `TEMPLATE` for the model's chat-template family,
one `PARAMETER stop` per end-of-turn/EOS string, `SYSTEM` when the template has a default system prompt, and
`num_ctx` from training's max_length.

The family is found, not guessed from the model's name: each known family's Go template is rendered (in
Python, sftkit.export.gotemplate) the way Ollama runs it and compared byte for byte with
`tokenizer.apply_chat_template` on probe conversations. A template of no known family is an error unless
the user gives one (`--template FILE`), which is then checked the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sftkit.errors import UserError
from sftkit.export import gotemplate

# Go templates as Ollama runs them: `.Messages` holds every turn, the Modelfile's SYSTEM included (Ollama
# prepends it when a request has no system turn); the text ends with the opening of the assistant turn.
FAMILY_TEMPLATES = {
    "chatml": ("{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
               "{{ end }}<|im_start|>assistant\n"),
    "llama3": ("{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
               "{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n"),
}
_MARK = "SFTKIT-SYSTEM-PROBE"


def probe_conversations() -> list[list[dict]]:
    """Conversations the template check renders: with and without a system turn, single- and multi-turn."""
    system = {"role": "system", "content": "You answer in one word."}
    first = [{"role": "user", "content": "Name a colour."}]
    multi = first + [{"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another one?"}]
    return [first, [system, *first], multi, [system, *multi]]


def ollama_prompt(template: str, messages: list[dict], system: str | None, bos_text: str = "") -> str:
    """The prompt text Ollama builds for a chat request: its default SYSTEM prepended when the request has no
    system turn, the Go template executed on the messages, and the BOS the runtime adds when tokenizing."""
    if system and (not messages or messages[0]["role"] != "system"):
        messages = [{"role": "system", "content": system}, *messages]
    data = {"Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages], "System": "",
            "Tools": [], "Prompt": "", "Response": ""}
    return bos_text + gotemplate.render(template, data)


def default_system(tokenizer) -> str | None:
    """The system prompt the chat template inserts when a conversation has none (None when it inserts none or
    refuses system turns)."""
    user = [{"role": "user", "content": "Hi"}]
    try:
        marked = tokenizer.apply_chat_template([{"role": "system", "content": _MARK}, *user], tokenize=False)
        plain = tokenizer.apply_chat_template(user, tokenize=False)
    except Exception:  # noqa: BLE001  templates raise their own error types on roles they refuse
        return None
    head, found, tail = marked.partition(_MARK)
    if found and plain.startswith(head) and plain.endswith(tail) and len(plain) > len(head) + len(tail):
        return plain[len(head):len(plain) - len(tail)]
    return None


@dataclass
class TemplateCheck:
    """The byte-for-byte comparison of a Go template with the Jinja chat template."""

    passed: bool
    num_conversations: int
    first_mismatch: dict | None

    def to_dict(self) -> dict:
        return {"passed": self.passed, "num_conversations": self.num_conversations,
                "first_mismatch": self.first_mismatch}


def check_template(template: str, tokenizer, system: str | None, bos_text: str) -> TemplateCheck:
    """Render `probe_conversations()` both ways (with the generation prompt) and compare the bytes."""
    conversations = probe_conversations()
    for messages in conversations:
        expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        try:
            got = ollama_prompt(template, messages, system, bos_text)
        except gotemplate.GoTemplateError as exc:
            return TemplateCheck(False, len(conversations), {"messages": messages, "error": str(exc)})
        if got != expected:
            at = next((k for k, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
            return TemplateCheck(False, len(conversations), {"messages": messages, "at_character": at,
                                                            "ollama": got[at:at + 40], "jinja": expected[at:at + 40]})
    return TemplateCheck(True, len(conversations), None)


def find_family(tokenizer, bos_text: str) -> tuple[str, str, str | None]:
    """(family, Go template, default system) of the tokenizer's chat template, or UserError naming the fix."""
    system = default_system(tokenizer)
    for family, template in FAMILY_TEMPLATES.items():
        if check_template(template, tokenizer, system, bos_text).passed:
            return family, template, system
    raise UserError(f"the chat template of {getattr(tokenizer, 'name_or_path', 'this model')} is of no family sftkit "
                    f"knows ({', '.join(FAMILY_TEMPLATES)}): write the Ollama TEMPLATE yourself (Go template over "
                    ".Messages) and pass it with --template FILE")


def read_template(path: str) -> str:
    from sftkit.paths import check_input

    return check_input(path, "--template", "file").read_text(encoding="utf-8")


def _quote(text: str) -> str:
    if '"""' in text:
        raise UserError('the template or system prompt contains """, which a Modelfile cannot quote')
    return f'"""{text}"""'


def modelfile(gguf_name: str, template: str, stops: list[str], system: str | None, num_ctx: int | None) -> str:
    """The Modelfile text: FROM, TEMPLATE, SYSTEM, one PARAMETER stop per string, num_ctx."""
    lines = [f"FROM ./{gguf_name}", f"TEMPLATE {_quote(template)}"]
    if system:
        lines.append(f"SYSTEM {_quote(system)}")
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    if num_ctx:
        lines.append(f"PARAMETER num_ctx {num_ctx}")
    return "\n".join(lines) + "\n"


def write_modelfile(out_dir: Path, text: str) -> Path:
    path = out_dir / "Modelfile"
    path.write_text(text, encoding="utf-8")
    return path


def model_name(display_name: str) -> str:
    """A name `ollama create` accepts (lower-case letters, digits, `-`, `_`, `.`)."""
    import re

    return re.sub(r"[^a-z0-9._-]+", "-", display_name.lower()).strip("-.") or "sftkit-model"
