"""The one chat-generation path. `sftkit generate`, `chat`, eval generation tasks, `compare` and `safety` all
call `generate`, so a prompt gets the same reply from the same model wherever it is asked.

Conversations are rendered with the model's chat template (`add_generation_prompt=True`) and encoded without
adding special tokens (the template already has them). Batches are left-padded so every prompt ends at the
same position. Decoding is greedy unless `temperature > 0`; only the arguments decide it (the model's
`generation_config` sampling defaults such as top_k or repetition_penalty are not applied). A reply ends at
the first stop token (see `stop_token_ids`), at a stop string, or after `max_new_tokens`.

A `GenerationHook` (optional) sees every new token as it is generated and can cancel a row: `sftkit serve`
streams replies and stops the rows of clients that went away through it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal, Protocol

import torch

from sftkit.data.batching import longest_first, pad_rows
from sftkit.data.chat_labels import end_of_turn_token_id, ensure_chat_template
from sftkit.errors import UserError

FinishReason = Literal["stop", "length", "content_filter", "cancelled"]


class GenerationHook(Protocol):
    """Watches a `generate` call. `index` is the conversation's position in the call's `conversations`."""

    def on_token(self, index: int, token_id: int) -> None:
        """A new token of a row, in order; the stop token that ends a row and the padding after it are not
        passed."""

    def cancelled(self, index: int) -> bool:
        """Checked in every decoding step once the step's token is chosen: True ends the row with that token
        (which `on_token` still gets); its Reply has finish_reason `cancelled` unless it had already ended."""


@dataclass(frozen=True)
class Reply:
    """One generated reply.

    text: decoded without special tokens, cut before the first stop string; not stripped.
    token_ids: the generated tokens of the reply: without the stop token that ended it, with the tokens that
        complete a stop string.
    finish_reason: `stop` (a stop token or stop string), `length` (`max_new_tokens` reached),
        `content_filter` (a guardrail blocked the request or withheld the reply; `text` is its notice) or
        `cancelled` (a hook stopped the row; `text` and `token_ids` are what was generated until then).
    prompt: the rendered prompt the model continued.
    num_prompt_tokens: its length in tokens.
    """

    text: str
    token_ids: list[int]
    finish_reason: FinishReason
    prompt: str
    num_prompt_tokens: int


def render_prompt(tokenizer, messages: list[dict]) -> str:
    """The chat template's text for `messages` followed by the opening of an assistant turn."""
    ensure_chat_template(tokenizer)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def stop_token_ids(model, tokenizer) -> list[int]:
    """Every id that ends a reply: the tokenizer's EOS, each id of the model's `generation_config.eos_token_id`
    and the chat template's end-of-turn token (the one training teaches the model to emit)."""
    ensure_chat_template(tokenizer)
    ids = {tokenizer.eos_token_id, end_of_turn_token_id(tokenizer)}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
    return sorted(i for i in ids if i is not None)


def _check_options(max_new_tokens: int, temperature: float, top_p: float) -> None:
    if max_new_tokens < 1:
        raise UserError(f"max_new_tokens {max_new_tokens}: a reply needs at least 1 new token")
    if temperature < 0:
        raise UserError(f"temperature {temperature} is negative: use 0 for greedy decoding or a positive value")
    if not 0 < top_p <= 1:
        raise UserError(f"top_p {top_p} is outside (0, 1]: use 1 to sample from the whole distribution")


def _generation_config(max_new_tokens: int, temperature: float, top_p: float, pad_id: int, stop_ids: list[int],
                       stop: list[str]):
    from transformers import GenerationConfig

    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if temperature > 0 \
        else {"do_sample": False}
    return GenerationConfig(max_new_tokens=max_new_tokens, pad_token_id=pad_id, eos_token_id=stop_ids,
                            repetition_penalty=1.0, stop_strings=stop or None, **sampling)


@contextlib.contextmanager
def _seeded(seed: int | None, device: torch.device):
    """Sampling draws from torch's generator seeded with `seed`; the caller's random state is restored after."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def _finish(tokenizer, generated: list[int], stop_ids: set[int], stop: list[str], max_new_tokens: int,
            cancelled_at: int | None = None):
    """(text, token_ids, finish_reason) of one generated row (a row that finished early is padded); a row a
    hook cancelled after `cancelled_at` tokens is `cancelled` unless it had ended by then."""
    if cancelled_at is not None and cancelled_at < max_new_tokens:
        text, ids, reason = _finish(tokenizer, generated[:cancelled_at], stop_ids, stop, cancelled_at)
        return text, ids, "cancelled" if reason == "length" else reason
    cut = next((k for k, token in enumerate(generated) if token in stop_ids), None)
    ids = generated if cut is None else generated[:cut]
    text = tokenizer.decode(ids, skip_special_tokens=True)
    if any(s in text for s in stop):
        # the shortest prefix that holds a stop string: a row stopped by one is followed by padding
        end = next(k for k in range(1, len(ids) + 1)
                   if any(s in tokenizer.decode(ids[:k], skip_special_tokens=True) for s in stop))
        ids = ids[:end]
        text = tokenizer.decode(ids, skip_special_tokens=True)
        return text[:min(text.find(s) for s in stop if s in text)], ids, "stop"
    return text, ids, "stop" if cut is not None or len(generated) < max_new_tokens else "length"


@torch.no_grad()
def generate(model, tokenizer, conversations: list[list[dict]], max_new_tokens: int | list[int] = 256, *,
             temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None, stop: list[str] | None = None,
             batch_size: int = 16, guard=None, hook: GenerationHook | None = None) -> list[Reply]:
    """One `Reply` per conversation (each ends with a user turn), in input order.

    max_new_tokens: one limit for all, or one per conversation (rows of a batch then stop at their own).
    temperature: 0 = greedy; otherwise sample at this temperature from the top_p nucleus (top_p=1: the whole
        distribution). `seed` makes sampling repeatable for the same conversations and `batch_size`.
    stop: strings that end a reply (not included in its text).
    guard: a `sftkit.safety.guardrails.Guardrail`; a blocked request is not sent to the model and a blocked
        reply is withheld, each replaced by the guardrail's notice.
    hook: sees each new token and can stop rows (see `GenerationHook`).
    """
    many = isinstance(max_new_tokens, (list, tuple))
    limits = list(max_new_tokens) if many else [max_new_tokens] * len(conversations)
    if len(limits) != len(conversations):
        raise ValueError(f"{len(limits)} max_new_tokens limits for {len(conversations)} conversations")
    _check_options(min(limits, default=1), temperature, top_p)
    stop = list(stop or [])
    prompts = [render_prompt(tokenizer, c) for c in conversations]
    encoded = [tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    replies: list[Reply | None] = [None] * len(conversations)
    if guard is not None:
        for i, conversation in enumerate(conversations):
            notice = guard.screen_request(i, conversation)
            if notice is not None:
                replies[i] = Reply(notice, [], "content_filter", prompts[i], len(encoded[i]))
    todo = [i for i, reply in enumerate(replies) if reply is None]
    stop_ids = stop_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    device = next(model.parameters()).device
    with _seeded(seed if temperature > 0 else None, device):
        for chunk in longest_first([len(encoded[i]) for i in todo], batch_size):
            rows = [todo[k] for k in chunk]
            ids, mask = pad_rows([encoded[i] for i in rows], pad_id, left=True)
            config = _generation_config(max(limits[i] for i in rows), temperature, top_p, pad_id, stop_ids, stop)
            row_stop = _RowStop(rows, [limits[i] for i in rows], hook, ids.shape[1])
            watch = {"stopping_criteria": [row_stop]} if row_stop.needed(config.max_new_tokens) else {}
            if hook is not None:
                watch["streamer"] = _streamer(hook, rows, set(stop_ids) | {pad_id})
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=config,
                                 **({"tokenizer": tokenizer} if stop else {}), **watch)
            for row, i in enumerate(rows):
                generated = out[row, ids.shape[1]:ids.shape[1] + limits[i]].tolist()
                text, token_ids, reason = _finish(tokenizer, generated, set(stop_ids), stop, limits[i],
                                                  row_stop.cancelled_at.get(i))
                replies[i] = Reply(text, token_ids, reason, prompts[i], len(encoded[i]))
    if guard is not None:
        for i in todo:
            notice = guard.screen_reply(i, replies[i].text)
            if notice is not None:
                replies[i] = Reply(notice, [], "content_filter", prompts[i], len(encoded[i]))
    return replies


class _RowStop:
    """A stopping criterion for `model.generate`: a row stops at its own token limit, or when the hook cancels
    it (recording after how many new tokens)."""

    def __init__(self, rows: list[int], limits: list[int], hook: GenerationHook | None, prompt_length: int):
        self.rows, self.limits, self.hook, self.prompt_length = rows, limits, hook, prompt_length
        self.cancelled_at: dict[int, int] = {}

    def needed(self, chunk_limit: int) -> bool:
        return self.hook is not None or any(limit < chunk_limit for limit in self.limits)

    def __call__(self, input_ids, scores, **kwargs) -> torch.Tensor:
        length = input_ids.shape[1] - self.prompt_length
        if self.hook is not None:
            for index in self.rows:
                if index not in self.cancelled_at and self.hook.cancelled(index):
                    self.cancelled_at[index] = length
        return torch.tensor([index in self.cancelled_at or length >= limit
                             for index, limit in zip(self.rows, self.limits)], device=input_ids.device)


def _streamer(hook: GenerationHook, rows: list[int], end_ids: set[int]):
    """A transformers streamer passing each row's new tokens to `hook` until the row's first stop token
    (padding ids are never passed: a row that stopped otherwise is padded)."""
    from transformers.generation.streamers import BaseStreamer

    class Streamer(BaseStreamer):
        def __init__(self):
            self.prompt_seen, self.ended = False, set()

        def put(self, value):
            if not self.prompt_seen:  # generate passes the prompt ids first
                self.prompt_seen = True
                return
            for index, token in zip(rows, value.tolist()):
                if index in self.ended or token in end_ids:
                    self.ended.add(index)
                else:
                    hook.on_token(index, token)

        def end(self):
            pass

    return Streamer()


def generate_replies(model, tokenizer, conversations: list[list[dict]], max_new_tokens: int = 256,
                     **options) -> list[str]:
    """The texts of `generate(...)` (same options)."""
    return [reply.text for reply in generate(model, tokenizer, conversations, max_new_tokens, **options)]
