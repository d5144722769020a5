"""Optional input and output filters for `sftkit generate` and `sftkit chat` (off unless asked for).

A `Guardrail` checks the user's last message before generation and the reply after it, with
  - blocklists: files of regular expressions, one per line (`#` comments and blank lines ignored), matched
    case-insensitively anywhere in the text; `default` names the list shipped in sftkit/assets/safety/.
    A comment line `# hazard: S9 ...` tags the patterns below it with that hazard code (sftkit/safety/hazards.py);
  - a pluggable classifier: `package.module:function`, called with the text and returning True (block), a
    number (block when >= 0.5) or a hazard code such as "S2" (block, tagged with it).
A blocked input is not sent to the model; a blocked reply is withheld. Either way the reply returned is a
one-line notice naming the rule that fired, and the event is kept in `Guardrail.events`. Every verdict carries
the rule's hazard code (None when its list gives none).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

from sftkit.errors import UserError
from sftkit.safety.hazards import HAZARDS

DEFAULT_BLOCKLIST = "default"
CLASSIFIER_THRESHOLD = 0.5
_HAZARD_LINE = re.compile(r"#\s*hazard:\s*(\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern
    source: str  # file:line, so a notice says which rule fired
    category: str | None = None  # hazard code from the list's `# hazard:` line above it


@dataclass
class Verdict:
    blocked: bool
    rule: str = ""
    category: str | None = None  # hazard code of the rule that fired
    source: str = ""  # the rule's file:line, or `classifier NAME`


def read_blocklist(spec: str) -> list[Pattern]:
    """Patterns from a file, or from the shipped list when `spec` is `default`. Bad regexes raise UserError."""
    if spec == DEFAULT_BLOCKLIST:
        text = resources.files("sftkit").joinpath("assets", "safety", "blocklist.txt").read_text(encoding="utf-8")
        name = "blocklist:default"
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UserError("blocklist file not found: give a file of regular expressions, one per line, or "
                            "`default`", source=spec)
        text, name = path.read_text(encoding="utf-8"), str(path)
    patterns, category = [], None
    for line_no, line in enumerate(text.splitlines(), start=1):
        tag = _HAZARD_LINE.match(line.strip())
        if tag:
            category = tag.group(1).upper()
            if category not in HAZARDS:
                raise UserError(f"unknown hazard code {tag.group(1)!r}: use one of S1..S14 "
                                "(sftkit/safety/hazards.py)", name, line_no)
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            patterns.append(Pattern(re.compile(line.strip(), re.IGNORECASE), f"{name}:{line_no}", category))
        except re.error as exc:
            raise UserError(f"invalid regular expression ({exc}): fix or remove this line", name, line_no) from None
    if not patterns:
        raise UserError("blocklist has no patterns", source=name)
    return patterns


def load_classifier(spec: str) -> Callable[[str], object]:
    """Import `package.module:function`; UserError when it cannot be found or is not callable."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UserError(f"--guard-classifier {spec!r}: use package.module:function")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"--guard-classifier {spec!r}: cannot import it ({exc})") from None
    if not callable(function):
        raise UserError(f"--guard-classifier {spec!r} is not callable")
    return function


@dataclass
class Guardrail:
    patterns: list[Pattern] = field(default_factory=list)
    classifier: Callable[[str], object] | None = None
    classifier_name: str = ""
    events: list[dict] = field(default_factory=list)

    @classmethod
    def from_options(cls, blocklists: list[str] | None, classifier: str | None) -> Guardrail | None:
        """The guardrail the CLI options ask for, or None when none is asked for (the default)."""
        if not blocklists and not classifier:
            return None
        patterns = [p for spec in blocklists or [] for p in read_blocklist(spec)]
        return cls(patterns, load_classifier(classifier) if classifier else None, classifier or "")

    def check(self, text: str) -> Verdict:
        for pattern in self.patterns:
            if pattern.regex.search(text):
                return Verdict(True, f"pattern '{pattern.regex.pattern}' ({pattern.source})", pattern.category,
                               pattern.source)
        if self.classifier is not None:
            score = self.classifier(text)
            if isinstance(score, str):
                code = score.upper()
                if code not in HAZARDS:
                    raise UserError(f"--guard-classifier {self.classifier_name} returned {score!r}: return True, "
                                    "a score, or a hazard code S1..S14")
                return Verdict(True, f"classifier {self.classifier_name}", code, f"classifier {self.classifier_name}")
            if score is True or (not isinstance(score, bool) and float(score) >= CLASSIFIER_THRESHOLD):
                return Verdict(True, f"classifier {self.classifier_name}", None, f"classifier {self.classifier_name}")
        return Verdict(False)

    def check_request(self, conversation: list[dict]) -> Verdict:
        """The verdict on the user's last message (what `screen_request` screens)."""
        return self.check(next((m["content"] for m in reversed(conversation) if m["role"] == "user"), ""))

    def screen_request(self, index: int, conversation: list[dict]) -> str | None:
        """The notice that replaces the reply when the user's last message is blocked (it is then not sent to
        the model), else None."""
        verdict = self.check_request(conversation)
        return self._notice("input", verdict, index) if verdict.blocked else None

    def screen_reply(self, index: int, reply: str) -> str | None:
        """The notice that replaces a blocked reply, else None."""
        verdict = self.check(reply)
        return self._notice("output", verdict, index) if verdict.blocked else None

    def apply(self, generate: Callable[[list[list[dict]]], list[str]], conversations: list[list[dict]]) -> list[str]:
        """Replies for `conversations` via `generate`, with blocked inputs skipped and blocked replies withheld."""
        replies: list[str | None] = [self.screen_request(i, c) for i, c in enumerate(conversations)]
        allowed = [i for i, reply in enumerate(replies) if reply is None]
        generated = generate([conversations[i] for i in allowed]) if allowed else []
        for index, reply in zip(allowed, generated):
            replies[index] = self.screen_reply(index, reply) or reply
        return replies

    def _notice(self, where: str, verdict: Verdict, index: int) -> str:
        self.events.append({"index": index, "where": where, "rule": verdict.rule, "category": verdict.category})
        what = "request was not sent to the model" if where == "input" else "reply was withheld"
        return f"[guardrail] This {what}: it matched {verdict.rule}."
