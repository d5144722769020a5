"""A deterministic planted data set for the curation tests: clean rows of several shapes, and rows planted to
be caught by exactly one detector each (with the detector that should catch them recorded in `truth`)."""

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
