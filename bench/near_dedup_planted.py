"""Near-duplicate detection on planted short instruction rows: recall and clean-row loss per shingling option.

Generates `tests/data/curate_planted.short_planted` rows for each seed (10-40-word prompts; near-copies whose
prompt differs from an original by one word and whose reply is the same; template families whose rows differ
in a number, an entity or the reply), runs `curate()` with each option set (`--set` overrides of `curate:`)
and prints one markdown row per option set: near-copy recall (copies rejected as `near_duplicate`, the case
edit excluded: it is an exact duplicate), recall per edit (any duplicate reason), clean-row and family-row
loss (rejected as a duplicate), summed over the seeds.

    python bench/near_dedup_planted.py --seeds 0 1 2 3 4
    python bench/near_dedup_planted.py --option "words 3=near.shingles=words,near.ngram_words=3"
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` is importable when run as a script

from sftkit.curate import curate  # noqa: E402
from sftkit.curate.config import load_curate_config  # noqa: E402
from tests.curate.planted import EDITS, near_copy_scores, short_planted, write_jsonl  # noqa: E402

# The quality filters are off: they would only change which row of a cluster is kept, and they need the tokenizer.
BASE = ("workers=1", "quality.enabled=false")
_WORDS_WHOLE = "near.shingles=words,near.parts=whole,near.numbers_must_match=false,near.threshold=0.8"
OPTIONS = {  # name -> overrides; every option not named is the default (chars 5-grams, prompt and reply, numbers, 0.85)
    "word 5-grams, whole row, 0.8 (before)": f"{_WORDS_WHOLE},near.ngram_words=5",
    "word 3-grams, whole row, 0.8": f"{_WORDS_WHOLE},near.ngram_words=3",
    "word 1-grams, whole row, 0.8": f"{_WORDS_WHOLE},near.ngram_words=1",
    "char 5-grams, whole row, 0.8": "near.parts=whole,near.numbers_must_match=false,near.threshold=0.8",
    "char 5-grams, prompt and reply, 0.8": "near.numbers_must_match=false,near.threshold=0.8",
    "char 5-grams, whole row, numbers, 0.8": "near.parts=whole,near.threshold=0.8",
    "char 5-grams, prompt and reply, numbers, 0.8": "near.threshold=0.8",
    "char 5-grams, prompt and reply, numbers, 0.7": "near.threshold=0.7",
    "char 5-grams, prompt and reply, numbers, 0.83": "near.threshold=0.83",
    "char 5-grams, prompt and reply, numbers, 0.85 (default)": "",
    "char 5-grams, prompt and reply, numbers, 0.87": "near.threshold=0.87",
    "char 5-grams, ..., 0.85, 256 permutations": "near.num_perm=256",
    "char 3-grams, prompt and reply, numbers, 0.85": "near.ngram_chars=3",
    "char 3-grams, prompt and reply, numbers, 0.9": "near.ngram_chars=3,near.threshold=0.9",
    "char 4-grams, prompt and reply, numbers, 0.85": "near.ngram_chars=4",
    "char 4-grams, prompt and reply, numbers, 0.87": "near.ngram_chars=4,near.threshold=0.87",
    "char 6-grams, prompt and reply, numbers, 0.8": "near.ngram_chars=6,near.threshold=0.8",
    "char 6-grams, prompt and reply, numbers, 0.85": "near.ngram_chars=6",
    "word 1-grams, prompt and reply, numbers, 0.8": "near.shingles=words,near.ngram_words=1,near.threshold=0.8",
}


def evaluate(overrides: list[str], seeds: list[int], directory: Path) -> dict:
    """Scores summed over `seeds` (rates weighted by row counts), and seconds spent in near dedup."""
    totals = {"near": [0, 0], "clean": [0, 0], "family": [0, 0], "edit": {e: [0, 0] for e in EDITS}}
    seconds = 0.0
    config = load_curate_config(None, [*BASE, *overrides])
    for seed in seeds:
        rows, truth = short_planted(seed)
        data = write_jsonl(directory / f"short-{seed}.jsonl", rows)
        report = curate([str(data)], directory / "out.jsonl", config)
        seconds += report["seconds"]["near_dedup"]
        rejects = [json.loads(line) for line in open(directory / "out.rejects.jsonl")]
        scores = near_copy_scores(rejects, truth)
        near_total = sum(edit != "case" for _, _, edit in truth["pairs"])
        for key, rate, total in (("near", scores["near_recall"], near_total),
                                 ("clean", scores["clean_loss"], len(truth["clean"])),
                                 ("family", scores["family_loss"], len(truth["family"]))):
            totals[key][0] += round(rate * total)
            totals[key][1] += total
        for edit in EDITS:
            total = sum(e == edit for _, _, e in truth["pairs"])
            totals["edit"][edit][0] += round(scores["recall_by_edit"][edit] * total)
            totals["edit"][edit][1] += total
    return {**{k: totals[k] for k in ("near", "clean", "family")}, "edit": totals["edit"], "seconds": seconds}


def percent(pair: list[int]) -> str:
    return f"{100 * pair[0] / pair[1]:.1f}% ({pair[0]}/{pair[1]})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--option", action="append", default=[], metavar="NAME=KEY=VALUE,KEY=VALUE",
                        help="an option set of your own (replaces the built-in list)")
    args = parser.parse_args()
    options = dict(item.split("=", 1) for item in args.option) if args.option else OPTIONS
    print("| option | near-copy recall | " + " | ".join(f"{e} caught" for e in EDITS)
          + " | clean rows lost | family rows lost | near dedup s |")
    print("|" + " --- |" * (5 + len(EDITS)))
    with tempfile.TemporaryDirectory() as tmp:
        for name, sets in options.items():
            clock = time.perf_counter()
            result = evaluate([s for s in sets.split(",") if s], args.seeds, Path(tmp))
            edits = " | ".join(percent(result["edit"][e]) for e in EDITS)
            print(f"| {name} | {percent(result['near'])} | {edits} | {percent(result['clean'])} | "
                  f"{percent(result['family'])} | {result['seconds']:.2f} |", flush=True)
            print(f"  ({time.perf_counter() - clock:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
