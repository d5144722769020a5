"""`sftkit export`: one run or model to one format in one directory, verified, written under a temporary name
and renamed into place only when complete (so a failure leaves nothing half-written behind).

Layout: hf -> OUT/{model.safetensors, config.json, tokenizer files, chat_template.jinja, generation_config.json}
plus OUT/adapter/ for an adapter vLLM can serve; gguf -> OUT/model-QUANT.gguf; ollama -> OUT/{model.gguf,
Modelfile}. Each has OUT/export_report.json and a short model card OUT/README.md. Default OUT:
RUN/export/FORMAT (exports/NAME/FORMAT for a model).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from sftkit.errors import UserError
from sftkit.export import checks as export_checks
from sftkit.export import hf, ollama
from sftkit.export.gguf import QUANTS, read_gguf, type_counts, write_gguf
from sftkit.export.quantize import K_QUANTS, require_llama_cpp
from sftkit.export.report import (
    CARD_NAME,
    REPORT_NAME,
    failed_checks,
    model_card,
    ollama_command,
    vllm_commands,
)
from sftkit.export.source import (
    DEFAULT_CONTEXT_TOKENS,
    ExportSource,
    load_merged,
    load_reference,
    load_source_tokenizer,
    resolve_source,
)

FORMATS = ("hf", "gguf", "ollama")
DEFAULT_QUANT = "q8_0"
_BYTES_PER_PARAM = {"fp32": 4, "f32": 4, "bf16": 2, "fp16": 2, "f16": 2, "q8_0": 1.07, "q6_k": 0.82,
                    "q5_k_m": 0.69, "q4_k_m": 0.57}


def check_options(fmt: str, quant: str | None, dtype: str, template: str | None) -> str | None:
    """The quant to use (None for hf), or UserError for an option that does not fit the format."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if dtype not in hf.DTYPES:
        raise UserError(f"--dtype {dtype!r} is not one of {', '.join(hf.DTYPES)}")
    if fmt == "hf":
        if quant is not None:
            raise UserError("--quant applies to --format gguf and ollama; for hf choose the dtype with --dtype")
        return None
    if template is not None and fmt != "ollama":
        raise UserError("--template applies to --format ollama only")
    quant = (quant or DEFAULT_QUANT).lower()
    if quant not in QUANTS:
        raise UserError(f"--quant {quant!r} is not one of {', '.join(QUANTS)}")
    return quant


def default_output(source: ExportSource, fmt: str) -> Path:
    root = source.run_dir / "export" if source.run_dir is not None else Path("exports") / source.display_name
    return root / fmt


def _prepare_output(out: Path, force: bool) -> Path:
    """The staging directory beside `out`, after refusing an existing `out` without --force."""
    from sftkit.paths import check_output

    check_output(out, "--output", "dir")
    if out.exists() and not force:
        raise UserError(f"{out} already exists: pass --force to replace it, or --output another directory")
    staging = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _check_space(staging: Path, num_params: int, fmt: str, dtype: str, quant: str | None) -> None:
    per_param = _BYTES_PER_PARAM[dtype] if fmt == "hf" else 4 + 4 * (quant in K_QUANTS) + _BYTES_PER_PARAM[quant]
    needed = int(num_params * per_param * 1.05)
    free = shutil.disk_usage(staging).free
    if free < needed:
        raise UserError(f"{staging.parent}: not enough free space for this export (needs about {_size(needed)}, "
                        f"{_size(free)} free): free some space or pass --output on a larger disk")


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 2**30:.1f} GiB" if num_bytes >= 2**30 else f"{num_bytes / 2**20:.1f} MiB"


def finalise(staging: Path, out: Path, report: dict) -> None:
    """Move the complete export into place (replacing an old one under --force). Everything that belongs in an
    export directory is written into `staging` before this point; this is the one place it becomes visible."""
    from sftkit.training.run_dir import write_json

    write_json(staging / REPORT_NAME, report)
    (staging / CARD_NAME).write_text(model_card(report), encoding="utf-8")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def run_export(model: str, fmt: str = "gguf", quant: str | None = None, *, dtype: str = "bf16",
               output: str | Path | None = None, force: bool = False, verify: bool = True,
               template: str | None = None, base: str | None = None, max_lora_rank: int | None = None,
               max_new_tokens: int = 64, console=None) -> dict:
    """Export `model` (a run directory, model directory, hub id or `default`) and return the report."""
    started = time.perf_counter()
    quant = check_options(fmt, quant, dtype, template)
    say = console.print if console is not None else (lambda *_: None)
    if quant in K_QUANTS:
        require_llama_cpp(f"--quant {quant}")  # before anything is loaded or written
    source = resolve_source(model, base)
    out = Path(output) if output else default_output(source, fmt)
    go_template = ollama.read_template(template) if template else None
    if fmt != "hf":
        _check_gguf_source(source)
    tokenizer, _ = hf.prepare_tokenizer(load_source_tokenizer(source))
    family = None
    if fmt == "ollama" and go_template is None:
        family, go_template, _ = _find_family(tokenizer)
    staging = _prepare_output(out, force)
    try:
        say(f"loading {source.name} and merging in fp32")
        merged = load_merged(source)
        _check_space(staging, sum(p.numel() for p in merged.parameters()), fmt, dtype, quant)
        end_ids = hf.end_of_turn_ids(merged, tokenizer)
        report = {"output_dir": str(out), "format": fmt, "quant": quant, "dtype": dtype if fmt == "hf" else None,
                  "source": _describe(source), "stop_ids": end_ids, "notes": [], "commands": {}}
        inputs = export_checks.CheckInputs(merged, None, tokenizer, end_ids, source.conversations, source.references,
                                           max_new_tokens)
        if verify:
            say("loading the run's model for the checks")
            inputs.run_model = load_reference(source)
        if fmt == "hf":
            checks = _write_hf(source, inputs, staging, out, dtype, max_lora_rank, verify, report)
        else:
            checks = _write_gguf(source, inputs, staging, out, fmt, quant, go_template, family, verify, say,
                                 report)
        report["checks"] = checks if verify else {}
        report["verified"] = verify
        report["passed"] = not failed_checks(report["checks"]) if verify else None
        report["files"] = {p.relative_to(staging).as_posix(): p.stat().st_size
                           for p in sorted(staging.rglob("*")) if p.is_file()}
        report["seconds"] = round(time.perf_counter() - started, 2)
        finalise(staging, out, report)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if exc.errno == 28:  # ENOSPC
            raise UserError(f"{out.parent}: no space left on the device: free some space or pass --output on a "
                            "larger disk") from None
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _check_gguf_source(source: ExportSource) -> None:
    import json

    from sftkit.export.converter import check_architecture

    config_dir = source.merged_dir or Path(source.base_model)
    config_file = config_dir / "config.json"
    if config_file.is_file():
        check_architecture(json.loads(config_file.read_text(encoding="utf-8")).get("architectures") or [],
                           str(config_file))


def _find_family(tokenizer):
    bos = tokenizer.bos_token or ""
    try:
        return ollama.find_family(tokenizer, "")
    except UserError:
        if not bos:
            raise
        return ollama.find_family(tokenizer, bos)


def _describe(source: ExportSource) -> dict:
    return {"name": source.name, "run_dir": str(source.run_dir) if source.run_dir else None,
            "base_model": source.base_model, "adapter": str(source.adapter_dir) if source.adapter_dir else None,
            "merged": str(source.merged_dir) if source.merged_dir else None,
            "num_test_prompts": len(source.conversations), "context_tokens": source.context_tokens}


def _write_hf(source, inputs, staging: Path, out: Path, dtype: str, max_lora_rank, verify: bool,
              report: dict) -> dict:
    from sftkit.models import load_tokenizer

    hf.write_model(inputs.merged, inputs.tokenizer, staging, dtype, inputs.end_ids)
    adapter_out = None
    if source.adapter_dir is not None:
        problems, notes = hf.adapter_problems(source.adapter_dir, max_lora_rank)
        changed = hf.tokenizer_changed(load_tokenizer(source.base_model), inputs.tokenizer)
        problems += [changed + " (vLLM serves adapter requests with the base's tokenizer)"] if changed else []
        if problems:
            report["notes"].append("no adapter export for vLLM: " + "; ".join(problems) + ". Serve the merged model")
        else:
            hf.write_adapter(source.adapter_dir, staging / "adapter")
            adapter_out = out / "adapter"
            report["notes"] += notes
    rank = hf.lora_rank_option(source.adapter_dir) if adapter_out is not None else None
    report["commands"] = vllm_commands(out, source.display_name, dtype, source.base_model, adapter_out,
                                       max_lora_rank or rank)
    return export_checks.hf_checks(inputs, staging, dtype) if verify else {}


def _write_gguf(source, inputs, staging: Path, out: Path, fmt: str, quant: str, go_template, family, verify: bool,
                say, report: dict) -> dict:
    from sftkit.paths import cache_dir

    hf_stage = staging / ".hf-fp32"
    hf.write_model(inputs.merged, inputs.tokenizer, hf_stage, "fp32", inputs.end_ids)
    gguf_file = staging / ("model.gguf" if fmt == "ollama" else f"model-{quant}.gguf")
    say(f"converting to GGUF ({quant}) with llama.cpp's converter")
    write_gguf(hf_stage, gguf_file, quant, cache_dir("logs") / "export-convert.log")
    meta, types = read_gguf(gguf_file)
    report["tensor_types"] = type_counts(types)
    num_ctx = source.context_tokens or min(inputs.merged.config.max_position_embeddings, DEFAULT_CONTEXT_TOKENS)
    checks = {}
    if verify:
        say("verifying the GGUF file")
        checks = export_checks.gguf_checks(inputs, gguf_file, quant, meta, types, hf_stage)
    shutil.rmtree(hf_stage)
    if fmt == "gguf":
        report["commands"] = {"llama.cpp": f"llama-server -m {out / gguf_file.name}"}
        return checks
    bos_text = inputs.tokenizer.convert_ids_to_tokens(meta["bos_token_id"]) if meta["add_bos_token"] else ""
    system = ollama.default_system(inputs.tokenizer)
    stops = [inputs.tokenizer.convert_ids_to_tokens(i) for i in inputs.end_ids]
    ollama.write_modelfile(staging, ollama.modelfile(gguf_file.name, go_template, stops, system, num_ctx))
    if verify:
        checks["ollama_template"] = export_checks.template_check(go_template, inputs.tokenizer, system, bos_text)
        checks["ollama_template"]["family"] = family or "user template (--template)"
    report["commands"] = {"ollama": ollama_command(out, ollama.model_name(source.display_name))}
    return checks
