"""`export_report.json`: what was written (files, sizes, tensor types), how to serve it (the exact `vllm serve`
and `ollama create` command lines) and every check with its numbers; and its terminal summary."""

from __future__ import annotations

import shlex
from pathlib import Path

REPORT_NAME = "export_report.json"
CARD_NAME = "README.md"


def vllm_commands(out_dir: Path, served_name: str, dtype: str, base_model: str | None,
                  adapter_dir: Path | None, max_lora_rank: int | None) -> dict[str, str]:
    """`vllm serve` for the merged model and, when an adapter was exported, for base + adapter."""
    vllm_dtype = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[dtype]
    commands = {"merged": shlex.join(["vllm", "serve", str(out_dir), "--served-model-name", served_name,
                                      "--dtype", vllm_dtype, "--generation-config", "auto"])}
    if adapter_dir is not None and base_model is not None:
        line = ["vllm", "serve", base_model, "--enable-lora", "--lora-modules", f"{served_name}={adapter_dir}",
                "--generation-config", "auto"]
        commands["adapter"] = shlex.join(line + (["--max-lora-rank", str(max_lora_rank)] if max_lora_rank else []))
    return commands


def ollama_command(out_dir: Path, name: str) -> str:
    return shlex.join(["ollama", "create", name, "-f", str(out_dir / "Modelfile")])


def failed_checks(checks: dict) -> list[str]:
    return [name for name, check in checks.items() if isinstance(check, dict) and check.get("passed") is False]


def summary_lines(report: dict) -> list[str]:
    """The few lines the CLI prints: where, what, checks, how to serve."""
    lines = [f"wrote {report['output_dir']} ({report['format']}"
             + (f", {report['quant']}" if report.get("quant") else f", {report.get('dtype')}") + ")"]
    for name, size in report["files"].items():
        lines.append(f"  {name}: {size / 2**20:.1f} MiB")
    if report.get("tensor_types"):
        lines.append("  tensor types written: " + ", ".join(f"{k} x{v}" for k, v in report["tensor_types"].items()))
    for name, check in report["checks"].items():
        state = {True: "passed", False: "FAILED", None: "reported"}[check.get("passed")]
        if "skipped" in check:
            state = f"skipped ({check['skipped']})"
        lines.append(f"  check {name}: {state}{_numbers(check)}")
    for what, command in report["commands"].items():
        lines.append(f"  {what}: {command}")
    for note in report.get("notes", []):
        lines.append(f"  note: {note}")
    return lines


def _numbers(check: dict) -> str:
    keys = ("top1_agreement", "mean_kl", "identical_tokens", "same_text", "stopped_by_itself", "num_prompts")
    shown = [f"{k}={check[k]:.4g}" if isinstance(check[k], float) else f"{k}={check[k]}" for k in keys if k in check]
    return f" ({', '.join(shown)})" if shown else ""


def model_card(report: dict) -> str:
    """A short README.md for the export directory: what the files are, where they came from, whether the checks
    passed and how to serve them (the numbers stay in export_report.json)."""
    source = report["source"]
    kind = report["quant"] or report["dtype"]
    checks = report["checks"]
    state = ("not verified (--no-verify)" if not report["verified"] else "all passed" if report["passed"]
             else "FAILED: " + ", ".join(failed_checks(checks)))
    lines = ["---", "library_name: " + ("transformers" if report["format"] == "hf" else "gguf"),
             "tags: [sftkit, export-" + report["format"] + "]", "---", "",
             f"# {Path(report['output_dir']).name} ({report['format']}, {kind})", "",
             f"Exported by `sftkit export` from `{source['name']}` (base model `{source['base_model']}`"
             + (", LoRA adapter merged in fp32" if source["adapter"] else "") + ").", "",
             (f"Checks against the model it came from: {state}. Details, file sizes and tensor types: "
              f"`{REPORT_NAME}`."), ""]
    for what, command in report["commands"].items():
        lines += [f"Serve ({what}):", "", "```", command, "```", ""]
    return "\n".join(lines)
