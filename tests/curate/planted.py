"""Deterministic planted data sets for the curation tests: `planted`, clean rows of several shapes and rows
planted to be caught by exactly one detector each (with the detector that should catch them recorded in
`truth`); `short_planted`, near-copies of short instructions among rows that share a template but differ in
substance, scored by `near_copy_scores` (the tests and bench/near_dedup_planted.py)."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = (
    "river mountain garden window library teacher student science history music planet ocean forest bridge "
    "market village kitchen doctor engine circuit signal pattern theory method answer question reason energy "
    "light water stone paper silver golden quiet bright narrow ancient modern simple careful gentle rapid "
    "build measure explain compare describe improve collect balance follow notice travel discover protect "
    "carry gather repair share borrow choose develop prepare observe record support village harbor canyon "
    "meadow valley island desert glacier volcano prairie lagoon orchard vineyard castle temple museum "
    "theater stadium airport station factory office clinic school campus laboratory workshop studio gallery "
    "journal notebook pencil marker canvas lantern compass anchor saddle blanket basket ladder hammer "
    "wrench needle thread button ribbon mirror candle pillow carpet curtain shelf drawer cabinet "
    "apple banana cherry grape lemon mango melon olive peach pepper potato tomato carrot onion garlic "
    "ginger honey butter cheese bread flour sugar salt rice bean noodle soup salad sauce spice"
).split()
EVAL_QUESTIONS = [
    "Which ancient civilization built the terraced farming system that still shapes the valley near the river delta today?",
    "How many kilometres of railway were opened across the northern plateau during the decade after the great flood?",
    "What is the name of the glacier whose meltwater feeds the three lakes below the eastern mountain pass?",
    "Why did the harbor town change its main trade from silver to spices during the late colonial period?",
    "Which composer wrote the symphony that premiered in the stone theater beside the old orchard market?",
]
SHORT_EVAL_QUESTION = "Who painted the lantern mural in the harbor museum?"  # 9 words: shorter than 13


def sentence(rng: random.Random, low: int = 7, high: int = 14) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
    return words[0].capitalize() + " " + " ".join(words[1:]) + "."


def text(rng: random.Random, sentences: int) -> str:
    return " ".join(sentence(rng) for _ in range(sentences))


def chat(row_id: str, prompt: str, reply: str, **extra) -> dict:
    return {"id": row_id, **extra, "messages": [{"role": "user", "content": prompt},
                                                {"role": "assistant", "content": reply}]}


def clean_rows(rng: random.Random, n: int) -> list[dict]:
    """Clean rows of several shapes: prose, lists, code, short answers, numbers, multi-turn, a system prompt."""
    rows = []
    for i in range(n):
        kind = i % 8
        prompt = text(rng, rng.randint(1, 2))
        if kind == 0:
            reply = "Here are the steps:\n" + "\n".join(f"- {sentence(rng, 3, 6)[:-1]}" for _ in range(4))
        elif kind == 1:
            reply = f"{sentence(rng)}\n\n```python\ndef total(items):\n    return sum(items) + {i}\n```\n\nThat is all."
        elif kind == 2:
            reply = rng.choice(WORDS).capitalize()
        elif kind == 3:
            reply = f"In {1900 + i % 120}, about {10 * i + 7} people lived there. {sentence(rng)} Version 2.{i}.1 fixed it."
        elif kind == 4:
            row = {"id": f"clean-{i}", "messages": [
                {"role": "system", "content": "You are a careful assistant."},
                {"role": "user", "content": prompt}, {"role": "assistant", "content": text(rng, 2)},
                {"role": "user", "content": sentence(rng)}, {"role": "assistant", "content": text(rng, 2)}]}
            rows.append(row)
            continue
        else:
            reply = text(rng, rng.randint(2, 6))
        rows.append(chat(f"clean-{i}", prompt, reply, meta={"topic": rng.choice(WORDS), "n": i}))
    return rows


def planted(seed: int = 0, n_clean: int = 240, per_kind: int = 12) -> tuple[list[dict], dict[str, set[str]], list[dict]]:
    """(rows in file order, detector -> ids it should catch, evaluation rows).

    For near duplicates, `truth["near_duplicate"]` holds the ids of both members of each planted pair and
    `truth["near_pairs"]` the pairs: exactly one member of each pair should be dropped.
    """
    rng = random.Random(seed)
    rows = clean_rows(rng, n_clean)
    truth: dict[str, set] = {k: set() for k in (
        "exact_duplicate", "near_duplicate", "contaminated", "empty_response", "repeats_prompt", "repetitive",
        "truncated", "refusal", "too_long", "pii_email", "pii_phone", "pii_credit_card", "pii_secret")}
    truth["near_pairs"] = set()
    extra = []

    def add(kind: str, row: dict) -> None:
        truth[kind].add(row["id"])
        extra.append(row)

    for i in range(per_kind):
        src = rows[(7 * i) % len(rows)]
        if "messages" in src and len(src["messages"]) == 2:
            copy = json.loads(json.dumps(src))
            copy["id"] = f"exact-{i}"
            for m in copy["messages"]:
                m["content"] = "  " + m["content"].upper().replace(".", " !") + "  "
            add("exact_duplicate", copy)
        base = chat(f"near-base-{i}", text(rng, 2), text(rng, 16))
        words = base["messages"][1]["content"].split()
        for position in (len(words) // 3, 2 * len(words) // 3):
            words[position] = "zebra" if words[position] != "zebra" else "yak"
        near = chat(f"near-copy-{i}", base["messages"][0]["content"], " ".join(words))
        extra.append(base)
        add("near_duplicate", near)
        truth["near_duplicate"].add(base["id"])
        truth["near_pairs"].add((base["id"], near["id"]))
        question = EVAL_QUESTIONS[i % len(EVAL_QUESTIONS)] if i % 4 else SHORT_EVAL_QUESTION
        add("contaminated", chat(f"contam-{i}", f"{sentence(rng)} {question}", text(rng, 3)))
        add("empty_response", chat(f"empty-{i}", text(rng, 2), ["...", "?", " - ", "!!"][i % 4]))
        prompt = text(rng, 2)
        add("repeats_prompt", chat(f"echo-{i}", prompt, prompt if i % 2 else prompt + " Sure."))
        loop = sentence(rng)
        repetitive = [("\n".join([loop] * 6)), "ha" * 30, " ".join([rng.choice(WORDS)] * 40) + ".",
                      f"{sentence(rng)} " + " ".join(["the answer is yes"] * 12) + "."][i % 4]
        add("repetitive", chat(f"rep-{i}", text(rng, 2), repetitive))
        cut = text(rng, 5)
        truncated = cut[:-1].rsplit(" ", 1)[0] if i % 2 else sentence(rng) + "\n\n```python\nfor x in range(3):\n    print(x"
        add("truncated", chat(f"trunc-{i}", text(rng, 1), truncated))
        refusal = ["As an AI language model, I cannot browse the internet.",
                   "I'm sorry, but I can't help with that.",
                   "I cannot provide that information. " + sentence(rng),
                   "As an AI, I don't have personal opinions about " + rng.choice(WORDS) + "."][i % 4]
        add("refusal", chat(f"refuse-{i}", text(rng, 1), refusal))
        add("too_long", chat(f"long-{i}", text(rng, 1), text(rng, 130)))
        add("pii_email", chat(f"email-{i}", text(rng, 1), f"{sentence(rng)} Write to ana.{i}@example.org today."))
        phone = ["+1 202-555-01{:02d}", "(415) 555-01{:02d}", "+44 20 7946 09{:02d}"][i % 3].format(i)
        add("pii_phone", chat(f"phone-{i}", text(rng, 1), f"{sentence(rng)} Call {phone} after noon."))
        card = ["4111 1111 1111 1111", "5500-0000-0000-0004", "340000000000009", "6011000990139424"][i % 4]
        add("pii_credit_card", chat(f"card-{i}", f"Charge card {card} please.", sentence(rng)))
        secret = [f"AKIA{'ABCDEFGHIJKLMNOP'[i:] + 'QRSTUVWXYZ234567'[:i]}",
                  "ghp_" + "a1B2c3D4e5" * 4, f"sk-proj-{'x9Y8z7W6v5' * 3}", f'api_key = "f00dCafe{i:02d}beefBabe1234"'][i % 4]
        add("pii_secret", chat(f"secret-{i}", text(rng, 1), f"Use this config: {secret} and restart."))
    rng.shuffle(extra)
    position = {r["id"]: i for i, r in enumerate(extra)}
    for base_id, copy_id in sorted(truth["near_pairs"]):  # the base of a near pair comes first
        a, b = position[base_id], position[copy_id]
        if a > b:
            extra[a], extra[b] = extra[b], extra[a]
            position[base_id], position[copy_id] = b, a
    merged = rows + extra  # exact copies come after the clean rows they copy
    eval_rows = [{"id": f"eval-{i}", "messages": [{"role": "user", "content": q},
                                                  {"role": "assistant", "content": "A short answer."}]}
                 for i, q in enumerate(EVAL_QUESTIONS + [SHORT_EVAL_QUESTION])]
    return merged, truth, eval_rows


def write_jsonl(path: Path, rows: list, bad_lines: tuple[str, ...] = ()) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        for line in bad_lines:
            handle.write(line + "\n")
    return path


# Short instruction rows (`short_planted`): near-copies that differ from an original by one prompt word and keep
# its reply, and template families whose rows differ in substance and must all be kept.
NAMES = (
    "France Spain Italy Japan Kenya Peru Canada Egypt Norway Chile Ghana Nepal Cuba Poland Greece Austria Sweden "
    "Portugal Thailand Brazil Mexico India Turkey Ireland Iceland Morocco Vietnam Finland Denmark Hungary Lisbon "
    "Vienna Madrid Oslo Cairo Lima Nairobi Athens Warsaw Dublin Prague Berlin Tokyo Havana Quito Bogota Seoul "
    "Manila Jakarta Sydney Toronto Chicago Boston Denver Austin Seattle Amelia Bruno Clara Diego Elena Felix Greta "
    "Hugo Irene Jonas Karla Louis Marta Nadia Oscar Paula Rafael Sofia Tomas Ursula Victor Wanda Xavier Yara Zoran"
).split()
EDITS = ("plural", "case", "singular", "article")  # the one-word edits of a near-copy's prompt
FAMILY_KINDS = ("number", "number_same_reply", "entity", "entity_same_reply_template", "reply", "reply_template")


def short_text(rng: random.Random, low: int, high: int) -> str:
    """`low`-`high` words as sentences of 4-14 words."""
    total, parts = rng.randint(low, high), []
    while total > 0:
        size = min(total, rng.randint(4, 14))
        total -= size
        parts.append(sentence(rng, size, size))
    return " ".join(parts)


def edit_one_word(rng: random.Random, prompt: str, edit: str) -> str:
    """`prompt` with one word edited: `plural` adds an s, `case` upper-cases a word (an exact duplicate after
    normalisation), `singular` drops a final s (a plural is added first if the prompt has none), `article`
    inserts "the" before a word."""
    words = prompt.split(" ")
    alpha = [i for i, w in enumerate(words) if w.isalpha() and len(w) > 2]
    i = rng.choice(alpha)
    if edit == "plural":
        words[i] += "s"
    elif edit == "case":
        words[i] = words[i].upper()
    elif edit == "singular":
        plural = [j for j in alpha if words[j].endswith("s")]
        i = rng.choice(plural) if plural else i
        words[i] = words[i][:-1] if plural else words[i] + "es"
    else:
        words.insert(i, "the" if i else "The")
        words[i + 1] = words[i + 1].lower() if i == 0 else words[i + 1]
    return " ".join(words)


def template_family(rng: random.Random, kind: str, size: int, name: str) -> list[dict]:
    """`size` rows sharing a 10-40-word prompt template and differing in substance: a number (`number`: the
    reply follows from it; `number_same_reply`: it does not), an entity (`entity`: a reply about it;
    `entity_same_reply_template`: one reply template naming it and an attribute of it), or the reply alone
    (`reply`: different replies; `reply_template`: one reply template with two different words)."""
    head, tail = short_text(rng, 4, 20)[:-1], short_text(rng, 5, 19)
    reply_head, reply_tail = short_text(rng, 1, 12)[:-1], short_text(rng, 1, 12)
    fixed_reply = short_text(rng, 1, 30)
    slots = rng.sample(range(2, 9999), size) if kind.startswith("number") else rng.sample(NAMES, size)
    rows = []
    for i, slot in enumerate(slots):
        prompt = f"{head} {slot}. {tail}" if kind in FAMILY_KINDS[:4] else f"{head}. {tail}"
        if kind == "number":
            reply = f"{reply_head} {slot * 3 + 1}, {reply_tail}"
        elif kind == "number_same_reply":
            reply = fixed_reply
        elif kind == "entity":
            reply = f"{slot} {short_text(rng, 1, 40)}"
        elif kind == "entity_same_reply_template":
            reply = f"{reply_head} {slot} {rng.choice(NAMES)}, {reply_tail}"
        elif kind == "reply":
            reply = short_text(rng, 1, 40)
        else:
            reply = f"{reply_head} {rng.choice(WORDS)} {rng.choice(WORDS)}, {reply_tail}"
        rows.append(chat(f"{name}-{i}", prompt, reply))
    return rows


def short_planted(seed: int = 0, num_originals: int = 320, num_families: int = 60, family_size: int = 6
                  ) -> tuple[list[dict], dict[str, set]]:
    """(rows in file order, truth) for near duplicates of short instructions (prompts of 10-40 words).

    truth: `pairs` {(original id, copy id, edit)}: the copy's prompt is the original's with one word edited
    (`EDITS`), and its reply is the same; `clean`: the ids of every other row (originals and template families:
    `family` holds the family rows alone), all of which should be kept. Originals are free-standing rows
    (replies of 1-60 words) and, one in five, rows of a template family, so that a copy has siblings that differ
    only in substance. Every copy comes after its original.
    """
    rng = random.Random(seed)
    families = [template_family(rng, FAMILY_KINDS[f % len(FAMILY_KINDS)], family_size, f"family{f}")
                for f in range(num_families)]
    family_rows = [row for family in families for row in family]
    from_families = iter(rng.sample(family_rows, num_originals // 5))
    originals = [next(from_families) if i % 5 == 4 else chat(f"short-{i}", short_text(rng, 10, 40),
                                                             short_text(rng, 1, 60)) for i in range(num_originals)]
    copies, pairs = [], set()
    for i, original in enumerate(originals):
        edit = EDITS[i % len(EDITS)]
        prompt = edit_one_word(rng, original["messages"][0]["content"], edit)
        copies.append(chat(f"copy-{i}-{edit}", prompt, original["messages"][1]["content"]))
        pairs.add((original["id"], copies[-1]["id"], edit))
    rows = family_rows + [r for r in originals if r["id"].startswith("short-")]
    rng.shuffle(rows)
    rows += copies  # after every original
    truth = {"pairs": pairs, "clean": {r["id"] for r in rows} - {c["id"] for c in copies},
             "family": {r["id"] for r in family_rows}}
    return rows, truth


def near_copy_scores(rejects: list[dict], truth: dict[str, set]) -> dict:
    """Recall and clean-row loss of a curation run on `short_planted` rows, from its rejects.

    A copy is caught when it is rejected as a duplicate and its original is kept; `near_recall` counts the copies
    rejected as `near_duplicate` among those whose edit survives normalisation (all but `case`, which is an exact
    duplicate); `clean_loss` is the share of clean rows rejected as a duplicate, `family_loss` that of the
    template-family rows.
    """
    reason = {e["row"]["id"]: e["reason"] for e in rejects if isinstance(e["row"], dict)}
    duplicate = {i for i, r in reason.items() if r in ("near_duplicate", "exact_duplicate")}
    by_edit: dict[str, list[int]] = {edit: [0, 0] for edit in EDITS}
    for original, copy, edit in truth["pairs"]:
        by_edit[edit][0] += copy in duplicate and original not in reason
        by_edit[edit][1] += 1
    near = [(o, c) for o, c, edit in truth["pairs"] if edit != "case"]
    return {
        "near_recall": sum(reason.get(c) == "near_duplicate" and o not in reason for o, c in near) / len(near),
        "recall_by_edit": {edit: caught / total for edit, (caught, total) in by_edit.items()},
        "clean_loss": len(truth["clean"] & duplicate) / len(truth["clean"]),
        "family_loss": len(truth["family"] & duplicate) / len(truth["family"]),
        "lost": sorted(truth["clean"] & duplicate),
    }
