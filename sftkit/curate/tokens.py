"""Token-length filters (`too_long`, `too_short`) with the training model's tokenizer and chat template.

Tokenising every row is the slowest part of curation (~0.5M tokens/s on two cores), and most rows are far
from the limits. A tokenizer never produces more tokens than the UTF-8 bytes of its input plus one (each
token covers at least one byte; SentencePiece may add one prefix token), and a chat template adds a fixed
text per role sequence. So the rendered size in bytes bounds the token count from above, and only rows whose
bound crosses a limit are rendered and tokenised exactly, as the trainer would. The bound is checked on the
first rows of every run; if the tokenizer breaks it, every row is tokenised.
"""

from __future__ import annotations

from sftkit.data.chat_labels import ensure_chat_template, render

_PROBE_ROWS = 64
_PLACEHOLDER = "x"


class TokenLengths:
    """`check(batch)` -> per conversation, [(reason, detail)] for `too_long` / `too_short`."""

    def __init__(self, tokenizer, max_length: int, min_response_tokens: int, too_long: bool):
        ensure_chat_template(tokenizer)
        self.tokenizer, self.max_length = tokenizer, max_length
        self.min_response_tokens, self.too_long = min_response_tokens, too_long
        self._overhead: dict[tuple[str, ...], int] = {}
        self._max_token_bytes: int | None = None
        self.exact_always = False
        self.num_tokenized = 0
        self._probed = False

    def overhead_bytes(self, roles: tuple[str, ...]) -> int:
        """Bytes the chat template adds around the contents of a conversation with these roles."""
        if roles not in self._overhead:
            text = render(self.tokenizer, [{"role": r, "content": _PLACEHOLDER} for r in roles])
            self._overhead[roles] = max(0, len(text.encode("utf-8")) - len(roles) * len(_PLACEHOLDER))
        return self._overhead[roles]

    def count(self, conversations: list[list[dict]]) -> list[int]:
        """Exact token counts of the rendered conversations (what the trainer tokenises)."""
        texts = [render(self.tokenizer, messages) for messages in conversations]
        self.num_tokenized += len(texts)
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def upper_bound(self, messages: list[dict]) -> int:
        content_bytes = sum(len(m["content"].encode("utf-8")) for m in messages)
        return content_bytes + self.overhead_bytes(tuple(m["role"] for m in messages)) + 1

    def check(self, conversations: list[list[dict]]) -> list[list[tuple[str, str]]]:
        if not self._probed:
            self.probe(conversations[:_PROBE_ROWS])
        flags: list[list[tuple[str, str]]] = [[] for _ in conversations]
        if self.too_long:
            bounds = [self.upper_bound(m) for m in conversations]
            ambiguous = [i for i, b in enumerate(bounds) if self.exact_always or b > self.max_length]
            if ambiguous:
                exact = self.count([conversations[i] for i in ambiguous])
                for i, n in zip(ambiguous, exact):
                    if n > self.max_length:
                        flags[i].append(("too_long", f"{n} tokens > max_length {self.max_length}"))
        if self.min_response_tokens > 1:
            self._check_short(conversations, flags)
        return flags

    def _check_short(self, conversations, flags) -> None:
        limit = self.min_response_tokens
        replies = [[m["content"] for m in c if m["role"] == "assistant"] for c in conversations]
        max_bytes = self.max_token_bytes()
        # At least ceil(bytes / longest token) tokens: only replies that might be short are tokenised.
        maybe = [i for i, r in enumerate(replies)
                 if self.exact_always or -(-sum(len(t.encode("utf-8")) for t in r) // max_bytes) < limit]
        texts = [t for i in maybe for t in replies[i]]
        if not texts:
            return
        lengths = iter(len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"])
        self.num_tokenized += len(maybe)
        for i in maybe:
            n = sum(next(lengths) for _ in replies[i])
            if n < limit:
                flags[i].append(("too_short", f"{n} reply tokens < min_response_tokens {limit}"))

    def max_token_bytes(self) -> int:
        if self._max_token_bytes is None:
            vocab = range(len(self.tokenizer))
            self._max_token_bytes = max(1, max(len(self.tokenizer.decode([i]).encode("utf-8")) for i in vocab))
        return self._max_token_bytes

    def take_tokenized(self) -> int:
        """Rows tokenised exactly since the last call."""
        count, self.num_tokenized = self.num_tokenized, 0
        return count

    def probe(self, conversations: list[list[dict]]) -> None:
        """Check the byte bound on these rows; if the tokenizer breaks it, tokenise every row from now on."""
        self._probed = True
        if not conversations:
            return
        exact = self.count(conversations)
        if any(n > self.upper_bound(m) for n, m in zip(exact, conversations)):
            self.exact_always = True
