"""`curate()`: validation, deduplication, filters, decontamination, PII and selection, in that order.

Stages run on the rows still alive after the previous ones, so each dropped row has one stage and one primary
reason; its other flags are listed with it. Every input row ends in exactly one of the two outputs: the
curated file (rows exactly as read, in input order) or the rejects file (`{source, line, stage, reason,
reasons, details, row}`, in input order), unparseable rows included.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from sftkit.curate.config import CurateConfig
from sftkit.curate.features import Features, compute_features
from sftkit.curate.text import conversation_text
from sftkit.errors import UserError
from sftkit.paths import check_output, check_spec

STAGES = ("validate", "exact_dedup", "near_dedup", "semantic_dedup", "quality", "decontaminate", "pii", "select")
_EMBED_CHARS = 2000  # text per row given to the embedding model (MiniLM reads ~256 tokens anyway)


def output_paths(output: str | Path, report: str | Path | None = None) -> tuple[Path, Path, Path]:
    """(curated, rejects, report): OUT.jsonl -> OUT.rejects.jsonl and OUT.report.json unless given."""
    output = Path(output)
    stem = output.with_suffix("") if output.suffix == ".jsonl" else output
    return output, Path(f"{stem}.rejects.jsonl"), Path(report) if report else Path(f"{stem}.report.json")


class _Run:
    def __init__(self, examples, feats: Features, config: CurateConfig):
        self.examples, self.feats, self.config = examples, feats, config
        self.alive = np.ones(len(examples), dtype=bool)
        self.drops: dict[int, tuple[str, str, str]] = {}  # row -> (stage, reason, detail)
        self.stages: list[dict] = []
        self.why_kept: dict[int, str] = {}
        self.workers = 1

    def label(self, row: int) -> str:
        return f"{self.examples[row].source}:{self.examples[row].line}"

    def drop(self, stage: str, found: dict[int, tuple[str, str]], seconds: float, **info) -> None:
        rows_in = int(self.alive.sum())
        reasons: dict[str, int] = {}
        for row, (reason, detail) in sorted(found.items()):
            self.alive[row] = False
            self.drops[row] = (stage, reason, detail)
            for r in [reason] + [r for r in self.feats.reasons(row, stage) if r != reason]:
                reasons[r] = reasons.get(r, 0) + 1
        self.stages.append({"stage": stage, "rows_in": rows_in, "dropped": len(found),
                            "rows_out": rows_in - len(found), "reasons": dict(sorted(reasons.items())),
                            "seconds": round(seconds, 3), **info})

    def flagged(self, stage: str) -> dict[int, tuple[str, str]]:
        out = {}
        for row in np.nonzero(self.alive)[0].tolist():
            hits = [(r, d) for s, r, d in self.feats.flags.get(row, ()) if s == stage]
            if hits:
                out[row] = hits[0]
        return out

    def preference(self) -> np.ndarray:
        """Dedup keeps the row that passes the filters, then the best heuristic score, then the first."""
        dropping = {"quality"} | ({"decontaminate"} if self.config.decontam.action == "drop" else set()) \
            | ({"pii"} if self.config.pii.action == "drop" else set())
        passes = np.array([not any(s in dropping for s, _, _ in self.feats.flags.get(i, ()))
                           for i in range(len(self.examples))])
        return self.feats.heuristic + 1e6 * passes


def _jsonl_line(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str) + "\n"


def curate(inputs: list[str], output: str | Path, config: CurateConfig | None = None,
           report_path: str | Path | None = None) -> dict:
    """Curate `inputs` into `output`; write the rejects file and the report. Returns the report."""
    from sftkit.curate.report import build_report
    from sftkit.data.dataset import load_conversations

    config = config or CurateConfig()
    out_path, rejects_path, report_file = output_paths(output, report_path)
    # wrong paths stop before any row is read
    for path, what in zip((out_path, rejects_path, report_file), ("-o/--output", "the rejects file", "--report")):
        check_output(path, what, "file")
    for spec in config.decontam.eval:
        check_spec("data", spec, "decontamination set")
    check_spec("model", config.model, "curate.model")
    for spec in inputs:
        if Path(spec).exists() and Path(spec).resolve() in {p.resolve() for p in (out_path, rejects_path, report_file)}:
            raise UserError(f"output {out_path} would overwrite the input {spec}: choose another -o path")
    began = time.perf_counter()
    examples, data_report = load_conversations(list(inputs), config.format, config.on_bad_row)
    validate_seconds = time.perf_counter() - began
    tokenizer = None
    if config.quality.enabled and (config.quality.too_long or config.quality.min_response_tokens > 1):
        from sftkit.models import load_tokenizer

        tokenizer = load_tokenizer(config.model_name)
    decontaminator = None
    if config.decontam.eval:
        from sftkit.curate.decontam import Decontaminator

        clock = time.perf_counter()
        decontaminator = Decontaminator(config.decontam.eval, config.decontam.ngram_words, config.decontam.min_words)
        index_seconds = time.perf_counter() - clock
    feats = compute_features(examples, config, tokenizer, decontaminator, workers=config.workers)
    run = _Run(examples, feats, config)
    run.workers = feats.workers
    run.stages.append({"stage": "validate", "rows_in": data_report.rows_read, "dropped": data_report.rows_skipped,
                       "rows_out": len(examples), "reasons": dict(sorted(data_report.skipped.items())),
                       "seconds": round(validate_seconds, 3)})
    _dedup_stages(run)
    run.drop("quality", run.flagged("quality") if config.quality.enabled else {}, feats.seconds["quality"],
             rows_tokenized=feats.num_tokenized)
    decon = {}
    if decontaminator is not None:
        decon = {"eval_examples": decontaminator.num_examples, "eval_ngrams": decontaminator.num_ngrams,
                 "boilerplate_lines_ignored": decontaminator.num_boilerplate_lines,
                 "boilerplate_ngrams_ignored": decontaminator.num_boilerplate_ngrams,
                 "eval_rows_skipped": decontaminator.num_eval_rows_skipped, "index_seconds": round(index_seconds, 3),
                 "flagged_kept": 0}
    found = run.flagged("decontaminate")
    if config.decontam.action == "flag":
        decon["flagged_kept"], found = len(found), {}
    run.drop("decontaminate", found, feats.seconds["decontaminate"], **decon)
    found = run.flagged("pii")
    pii_info = {"action": config.pii.action, "flagged_kept": 0 if config.pii.action == "drop" else len(found)}
    run.drop("pii", found if config.pii.action == "drop" else {}, feats.seconds["pii"], **pii_info)
    masked = set(found) if config.pii.action == "mask" else set()
    _select_stage(run)
    clock = time.perf_counter()
    output_format = config.output_format
    if output_format == "auto":
        output_format = "messages" if len(data_report.formats) > 1 else "keep"
    _write(run, data_report.rejects, out_path, rejects_path, masked, output_format)
    write_seconds = time.perf_counter() - clock
    report = build_report(run, data_report, list(inputs), out_path, rejects_path, output_format, tokenizer,
                          seconds={"write": write_seconds, "total": time.perf_counter() - began})
    report_file.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    report["report_path"] = str(report_file)
    return report


def _dedup_stages(run: _Run) -> None:
    from sftkit.curate.dedup import exact_duplicates, near_duplicates

    config, feats = run.config, run.feats
    found = {}
    clock = time.perf_counter()
    if config.exact.enabled:
        found = {row: ("exact_duplicate", f"same normalised text as {run.label(first)}")
                 for row, first in exact_duplicates(feats.keys, run.alive).items()}
    run.drop("exact_dedup", found, feats.seconds["exact_dedup"] + time.perf_counter() - clock)
    found, info = {}, {}
    clock = time.perf_counter()
    if config.near.enabled:
        near = near_duplicates(feats.signatures, run.alive, run.preference(), config.near.threshold,
                               feats.number_keys)
        found = {row: ("near_duplicate", f"estimated Jaccard {near.similarity[row]:.2f} with {run.label(keep)} "
                       "(kept)") for row, keep in near.dup_of.items()}
        info = {"clusters": near.num_clusters}
    run.drop("near_dedup", found, feats.seconds["near_dedup"] + time.perf_counter() - clock, **info)
    found, info = {}, {}
    clock = time.perf_counter()
    if config.semantic.enabled:
        from sftkit.curate.embed import embed_texts, resolve_embedding
        from sftkit.curate.semantic import semantic_duplicates

        rows = np.nonzero(run.alive)[0]
        texts = [conversation_text(run.examples[i].messages)[:_EMBED_CHARS] for i in rows]
        vectors = embed_texts(texts, config.semantic.model, config.semantic.batch_size)
        sem = semantic_duplicates(vectors, run.preference()[rows], config.semantic.threshold,
                                  config.semantic.cluster_size, config.seed)
        found = {int(rows[r]): ("semantic_duplicate", f"cosine {sem.similarity[r]:.3f} with "
                                f"{run.label(int(rows[k]))} (kept)") for r, k in sem.dup_of.items()}
        info = {"clusters": sem.num_clusters, "embedding": resolve_embedding(config.semantic.model)}
    run.drop("semantic_dedup", found, time.perf_counter() - clock, **info)


def _select_stage(run: _Run) -> None:
    from sftkit.curate.select import select

    cfg, clock = run.config.select, time.perf_counter()
    rows = np.nonzero(run.alive)[0]
    info: dict = {"target": cfg.target, "score": cfg.score}
    if cfg.target is None or len(rows) <= cfg.target:
        for row in rows.tolist():
            run.why_kept[row] = "kept: passed every filter" + ("" if cfg.target is None else
                                                               f" ({len(rows)} rows fit the target {cfg.target})")
        run.drop("select", {}, time.perf_counter() - clock, **info)
        return
    shown = run.feats.heuristic[rows]
    rank = shown
    if cfg.score == "ifd":
        from sftkit.curate.score import ifd_scores
        from sftkit.models import load_model, load_tokenizer

        import torch

        name = cfg.score_model or run.config.model_name
        model = load_model(name)
        if torch.cuda.is_available():
            model = model.to("cuda")
        scored = ifd_scores(model, load_tokenizer(name), [run.examples[i].messages for i in rows],
                            run.config.max_length_tokens, cfg.ifd_batch_tokens)
        shown = scored["ifd"]
        rank = np.where(np.isnan(shown), -np.inf, np.where(shown < cfg.ifd_max, shown, -shown))
        info.update(ifd_seconds=round(scored["seconds"], 3), ifd_rows_per_second=scored["rows_per_second"])
    vectors = None
    if cfg.diversity == "clusters":
        from sftkit.curate.embed import embed_texts, resolve_embedding

        texts = [conversation_text(run.examples[i].messages)[:_EMBED_CHARS] for i in rows]
        vectors = embed_texts(texts, cfg.embedding)
        info["embedding"] = resolve_embedding(cfg.embedding)
    chosen = select(rank, shown, cfg.target, vectors, cfg.num_clusters, run.config.seed, cfg.score)
    info.update(clusters=chosen.num_clusters, cluster_sizes=chosen.cluster_sizes, quotas=chosen.quotas)
    kept = set(chosen.kept)
    found = {}
    for local, row in enumerate(rows.tolist()):
        if local in kept:
            run.why_kept[row] = chosen.why[local]
        else:
            found[row] = ("not_selected", chosen.why[local])
    run.drop("select", found, time.perf_counter() - clock, **info)


def _write(run: _Run, loader_rejects: list[dict], out_path: Path, rejects_path: Path, masked: set[int],
           output_format: str) -> None:
    from sftkit.curate.pii import PIIDetector
    from sftkit.data.formats import detect_format

    detector = PIIDetector(run.config.pii.detect)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as handle:
        for row in np.nonzero(run.alive)[0].tolist():
            ex = run.examples[row]
            raw = ex.raw
            if output_format == "messages" and detect_format(raw) != "messages":
                raw = {**raw, "messages": ex.messages}
            elif ex.context:  # a row kept in its own format must still render as it did (BIG-bench task prefix)
                raw = {**{k: v for k, v in ex.context.items() if v is not None}, **raw}
            handle.write(_jsonl_line(detector.mask_row(raw) if row in masked else raw))
    rank: dict[str, int] = {}
    for ex in run.examples:
        rank.setdefault(ex.source, len(rank))
    entries = [(r["source"], r["line"], {"source": r["source"], "line": r["line"], "stage": "validate",
                                         "reason": r["reason"], "reasons": [r["reason"]],
                                         "details": {r["reason"]: r["message"]}, "row": r["row"]})
               for r in loader_rejects]
    for row, (stage, reason, detail) in run.drops.items():
        ex = run.examples[row]
        details = {reason: detail}
        for _, r, d in run.feats.flags.get(row, ()):
            details.setdefault(r, d)
        entries.append((ex.source, ex.line, {"source": ex.source, "line": ex.line, "stage": stage, "reason": reason,
                                             "reasons": list(details), "details": details, "row": ex.raw}))
    entries.sort(key=lambda e: (rank.get(e[0], len(rank)), e[0] if e[0] not in rank else "", e[1]))
    with open(rejects_path, "w", encoding="utf-8") as handle:
        for _, _, entry in entries:
            handle.write(_jsonl_line(entry))
