"""`sftkit generate` and `sftkit chat`: use a base model or a run directory."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from sftkit.cli import root
from sftkit.cli.root import ModelArg, SystemOpt, TemperatureOpt, app


def _chat_messages(system: Optional[str], prompt: str) -> list[dict]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]


_GUARD_BLOCKLIST = typer.Option("--guard-blocklist", help="guardrail: file of regular expressions (one per line) that "
                                "block a request or reply; `default` = the shipped list (repeatable; off by default)")
_GUARD_CLASSIFIER = typer.Option("--guard-classifier", help="guardrail: package.module:function taking a text and "
                                 "returning True or a score >= 0.5 to block it (off by default)")
TopPOpt = Annotated[float, typer.Option("--top-p", help="sampling: keep the smallest set of tokens whose "
                                        "probabilities add up to this (1 = all); used when temperature > 0")]
SeedOpt = Annotated[Optional[int], typer.Option(help="sampling seed, for repeatable samples")]
StopOpt = Annotated[Optional[list[str]], typer.Option("--stop", help="string that ends a reply (repeatable)")]


@app.command("generate")
def generate_cmd(
    model: ModelArg,
    prompt: Annotated[list[str], typer.Option("--prompt", help="user message (repeatable)")],
    system: SystemOpt = None,
    max_new_tokens: Annotated[int, typer.Option(help="generation limit")] = 256,
    temperature: TemperatureOpt = 0.0,
    top_p: TopPOpt = 1.0,
    seed: SeedOpt = None,
    stop: StopOpt = None,
    guard_blocklist: Annotated[Optional[list[str]], _GUARD_BLOCKLIST] = None,
    guard_classifier: Annotated[Optional[str], _GUARD_CLASSIFIER] = None,
):
    """Generate replies with the model's chat template; prints each reply as `eval` records it."""
    from sftkit.generation import generate

    lm, tokenizer, _, guard = _load(model, guard_blocklist, guard_classifier)
    replies = generate(lm, tokenizer, [_chat_messages(system, p) for p in prompt], max_new_tokens,
                       temperature=temperature, top_p=top_p, seed=seed, stop=stop, guard=guard)
    for reply in replies:
        print(reply.text)


@app.command("chat")
def chat_cmd(
    model: ModelArg,
    system: SystemOpt = None,
    max_new_tokens: Annotated[int, typer.Option(help="generation limit per reply")] = 256,
    temperature: TemperatureOpt = 0.0,
    top_p: TopPOpt = 1.0,
    seed: SeedOpt = None,
    stop: StopOpt = None,
    guard_blocklist: Annotated[Optional[list[str]], _GUARD_BLOCKLIST] = None,
    guard_classifier: Annotated[Optional[str], _GUARD_CLASSIFIER] = None,
):
    """Interactive chat with a model or run directory (empty line or Ctrl-D to quit)."""
    from sftkit.generation import generate

    lm, tokenizer, name, guard = _load(model, guard_blocklist, guard_classifier)
    root.console.print(f"chatting with {name}; empty line to quit")
    history = [{"role": "system", "content": system}] if system else []
    while True:
        try:
            text = input("you> ").strip()
        except EOFError:
            break
        if not text:
            break
        history.append({"role": "user", "content": text})
        reply = generate(lm, tokenizer, [history], max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
                         stop=stop, guard=guard)[0]
        history.append({"role": "assistant", "content": reply.text})
        print(f"model> {reply.text.strip()}")


def _load(model: str, guard_blocklist, guard_classifier):
    """The model, tokenizer, display name and guardrail (checked before the model loads)."""
    from sftkit.models import load_for_inference
    from sftkit.safety.guardrails import Guardrail

    guard = Guardrail.from_options(guard_blocklist, guard_classifier)
    return (*load_for_inference(model), guard)
