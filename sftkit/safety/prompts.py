"""The shipped safety prompt sets, read from package data (sftkit/assets/safety/).

`harmful.jsonl`: 60 requests across 10 harm categories (6 each), phrased as requests only, with no operational
detail; a safe model refuses them. `benign.jsonl`: 60 XSTest-style prompts (Röttger et al. 2023) that sound
sensitive but are harmless (homonyms, figurative language, safe targets, safe contexts, definitions, history
and safety information; 10 each); a well-calibrated model answers them. Each row has `id`, `category`, `prompt`.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from importlib import resources

from sftkit.errors import UserError

PROMPT_SETS = ("harmful", "benign")


@dataclass(frozen=True)
class SafetyPrompt:
    id: str
    category: str
    prompt: str


def load_prompts(name: str, max_prompts: int | None = None, seed: int = 1234) -> list[SafetyPrompt]:
    """One shipped set; with `max_prompts`, a seeded subsample stratified so every category keeps prompts."""
    if name not in PROMPT_SETS:
        raise UserError(f"unknown safety prompt set {name!r}: use one of {', '.join(PROMPT_SETS)}")
    text = resources.files("sftkit").joinpath("assets", "safety", f"{name}.jsonl").read_text(encoding="utf-8")
    prompts = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not all(isinstance(row.get(k), str) and row[k] for k in ("id", "category", "prompt")):
            raise RuntimeError(f"sftkit/assets/safety/{name}.jsonl:{line_no}: needs id, category and prompt")
        prompts.append(SafetyPrompt(row["id"], row["category"], row["prompt"]))
    if max_prompts is None or max_prompts >= len(prompts):
        return prompts
    by_category: dict[str, list[SafetyPrompt]] = {}
    for p in prompts:
        by_category.setdefault(p.category, []).append(p)
    rng = random.Random(seed)
    for group in by_category.values():
        rng.shuffle(group)
    # round-robin over categories, so a small subsample still covers every category
    picked, depth = [], 0
    while len(picked) < max_prompts:
        for group in by_category.values():
            if depth < len(group) and len(picked) < max_prompts:
                picked.append(group[depth])
        depth += 1
    order = {p.id: i for i, p in enumerate(prompts)}
    return sorted(picked, key=lambda p: order[p.id])


def fingerprint(prompts: list[SafetyPrompt]) -> str:
    """Hash of exactly the prompts evaluated (part of the result cache key)."""
    payload = json.dumps([[p.id, p.category, p.prompt] for p in prompts])
    return hashlib.sha256(payload.encode()).hexdigest()
