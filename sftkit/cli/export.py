"""`sftkit export`: a run or model as vLLM-ready Hugging Face safetensors, a GGUF file or an Ollama model, each
checked against the model it came from (the report is OUT/export_report.json)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from sftkit.cli import root
from sftkit.cli.root import ModelArg, app

_FORMAT = typer.Option("--format", help="hf (vLLM, SGLang, TGI, transformers), gguf (llama.cpp) or ollama "
                       "(GGUF + Modelfile)")
_QUANT = typer.Option("--quant", help="gguf/ollama: f32, f16, bf16, q8_0 (default) or the K-quants q4_k_m, q5_k_m, "
                      "q6_k (these need the extra sftkit\\[gguf])")
_DTYPE = typer.Option("--dtype", help="hf: bf16 (default), fp16 or fp32")
_OUTPUT = typer.Option("--output", help="export directory (default RUN/export/FORMAT)", readable=False)
_TEMPLATE = typer.Option("--template", help="ollama: a Go TEMPLATE file, for a chat template of no family sftkit "
                         "knows", readable=False)
_BASE = typer.Option("--base", help="base model to merge the run's adapter into, instead of the one it names (the "
                     "unquantized original of a 4-bit base)")


@app.command("export")
def export_cmd(
    model: ModelArg,
    fmt: Annotated[str, _FORMAT] = "gguf",
    quant: Annotated[Optional[str], _QUANT] = None,
    dtype: Annotated[str, _DTYPE] = "bf16",
    output: Annotated[Optional[Path], _OUTPUT] = None,
    force: Annotated[bool, typer.Option("--force", help="replace an existing export directory")] = False,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="check the export against the model it "
                                         "came from (default on)")] = True,
    template: Annotated[Optional[Path], _TEMPLATE] = None,
    base: Annotated[Optional[str], _BASE] = None,
    max_lora_rank: Annotated[Optional[int], typer.Option(help="hf: vLLM --max-lora-rank to serve the adapter "
                                                         "with (default: the adapter's rank, when above 16)")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="token limit of the greedy replies the llama.cpp check "
                                                "compares")] = 64,
):
    """Export a run or model: merged safetensors for vLLM, GGUF for llama.cpp, or an Ollama Modelfile + GGUF."""
    from sftkit.export.exporter import run_export
    from sftkit.export.report import failed_checks, summary_lines

    report = run_export(model, fmt, quant, dtype=dtype, output=output, force=force, verify=verify,
                        template=str(template) if template else None, base=base, max_lora_rank=max_lora_rank,
                        max_new_tokens=max_new_tokens, console=root.console)
    for line in summary_lines(report):
        root.out.print(line, soft_wrap=True, highlight=False, markup=False)
    failed = failed_checks(report["checks"])
    if failed:
        root.console.print(f"error: {len(failed)} check(s) failed: {', '.join(failed)} (details in "
                           f"{report['output_dir']}/export_report.json)", soft_wrap=True, markup=False)
        sys.exit(1)
