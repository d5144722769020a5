"""The Hugging Face export (vLLM, SGLang, TGI, transformers): merged safetensors in the chosen dtype, a
tokenizer whose EOS is the end-of-turn token, exactly one chat template, and a `generation_config.json` that
lists every end-of-turn/EOS id with neutral sampling defaults (servers apply its values as their defaults,
and vLLM stops on each id in `eos_token_id`).

For an adapter run, also the adapter as vLLM's `--enable-lora` takes it, when vLLM can serve it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from sftkit.errors import UserError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
VLLM_DEFAULT_MAX_LORA_RANK = 16
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the values vLLM's --max-lora-rank accepts


def end_of_turn_ids(model, tokenizer) -> list[int]:
    """Every id that ends a reply (tokenizer EOS, the model's generation-config EOS ids, the template's
    end-of-turn token): the same list `sftkit generate` stops on."""
    from sftkit.generation import stop_token_ids

    return stop_token_ids(model, tokenizer)


def prepare_tokenizer(tokenizer):
    """The tokenizer with EOS set to the chat template's end-of-turn token, so runtimes that stop only on EOS
    stop where training taught the model to stop. Returns (tokenizer, end-of-turn token or None)."""
    from sftkit.data.chat_labels import end_of_turn_token_id, ensure_chat_template

    ensure_chat_template(tokenizer)
    eot = end_of_turn_token_id(tokenizer)
    if eot is not None and eot != tokenizer.eos_token_id:
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eot)
    return tokenizer, tokenizer.convert_ids_to_tokens(eot) if eot is not None else None


def _cast_state_dict(model, dtype: torch.dtype) -> dict:
    """The state dict in `dtype`, tied tensors still shared (so save_pretrained keeps the tie)."""
    by_pointer: dict[int, torch.Tensor] = {}
    return {name: by_pointer.setdefault(t.data_ptr(), t.detach().to(dtype)) for name, t in model.state_dict().items()}


def write_model(model, tokenizer, out_dir: Path, dtype: str, end_ids: list[int]) -> None:
    """Write the merged model in `dtype` (the fp32 model passed in is left unchanged) with its tokenizer, one
    chat template and the generation config."""
    from transformers import GenerationConfig

    torch_dtype = DTYPES[dtype]
    model.save_pretrained(out_dir, state_dict=_cast_state_dict(model, torch_dtype), safe_serialization=True)
    # save_pretrained records the dtype of the model in memory (fp32); servers pick their default dtype from it
    config_file = out_dir / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["dtype"] = str(torch_dtype).removeprefix("torch.")
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tokenizer.save_pretrained(out_dir)
    keep_one_chat_template(out_dir)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_ids[0]
    GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=end_ids, pad_token_id=pad, do_sample=True,
                     temperature=1.0, top_p=1.0, top_k=0, repetition_penalty=1.0).save_pretrained(out_dir)


def keep_one_chat_template(out_dir: Path) -> None:
    """Leave exactly one chat template: `chat_template.jinja`. A `chat_template` key in tokenizer_config.json
    wins over the file in llama.cpp's converter and some servers, so two copies that drift apart would make
    runtimes disagree."""
    config_file = out_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    template = config.pop("chat_template", None)
    if isinstance(template, str) and not (out_dir / "chat_template.jinja").is_file():
        (out_dir / "chat_template.jinja").write_text(template, encoding="utf-8")
    if template is not None:
        config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "chat_template.json").unlink(missing_ok=True)


def chat_templates(out_dir: Path) -> list[str]:
    """The chat templates stored in an export directory (file names, or `tokenizer_config.json:chat_template`)."""
    found = [name for name in ("chat_template.jinja", "chat_template.json") if (out_dir / name).is_file()]
    config = json.loads((out_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    return found + (["tokenizer_config.json:chat_template"] if "chat_template" in config else [])


def adapter_problems(adapter_dir: Path, max_lora_rank: int | None) -> tuple[list[str], list[str]]:
    """(problems, notes) of a PEFT adapter for vLLM's --enable-lora. A problem means vLLM cannot serve it as
    an adapter (serve the merged model); a note changes the command line (rank above vLLM's default 16)."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    problems, notes = [], []
    if config.get("use_dora"):
        problems.append("it is a DoRA adapter (vLLM serves plain LoRA only)")
    if config.get("modules_to_save"):
        problems.append(f"it trains whole modules ({', '.join(config['modules_to_save'])}) beside the LoRA "
                        "matrices (modules_to_save), which vLLM does not load")
    if config.get("bias", "none") != "none":
        problems.append(f"it trains biases (bias={config['bias']!r}), which vLLM does not load")
    rank = int(config.get("r", 0))
    ranks = [rank, *map(int, (config.get("rank_pattern") or {}).values())]
    if max(ranks) > VLLM_DEFAULT_MAX_LORA_RANK:
        if max_lora_rank is not None and max_lora_rank < max(ranks):
            problems.append(f"its rank {max(ranks)} is above --max-lora-rank {max_lora_rank}")
        elif max(ranks) > VLLM_LORA_RANKS[-1]:
            problems.append(f"its rank {max(ranks)} is above vLLM's largest --max-lora-rank {VLLM_LORA_RANKS[-1]}")
        else:
            notes.append(f"rank {max(ranks)} is above vLLM's default --max-lora-rank {VLLM_DEFAULT_MAX_LORA_RANK}: "
                         "the command line raises it")
    return problems, notes


def lora_rank_option(adapter_dir: Path) -> int | None:
    """The --max-lora-rank value vLLM needs for this adapter (None when its default 16 is enough)."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    rank = max([int(config.get("r", 0)), *map(int, (config.get("rank_pattern") or {}).values())])
    return next(r for r in VLLM_LORA_RANKS if r >= rank) if rank > VLLM_DEFAULT_MAX_LORA_RANK else None


def tokenizer_changed(base_tokenizer, tokenizer) -> str | None:
    """How the run's tokenizer differs from the base's (vLLM serves adapter requests with the base's tokenizer
    and chat template), or None."""
    if base_tokenizer.get_vocab() != tokenizer.get_vocab():
        return "training changed the vocabulary"
    if (base_tokenizer.chat_template or "") != (tokenizer.chat_template or ""):
        return "training changed the chat template"
    return None


def write_adapter(adapter_dir: Path, out_dir: Path) -> None:
    """Copy the adapter weights and config (the base's tokenizer serves it)."""
    out_dir.mkdir(parents=True)
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        if not (adapter_dir / name).is_file():
            raise UserError(f"{adapter_dir / name} is missing: the adapter directory is incomplete")
        shutil.copy2(adapter_dir / name, out_dir / name)
