"""Checks that need no llama.cpp (they run in every export and every CI run): the GGUF's metadata against the
HF model, the GGUF read back with transformers' own GGUF reader against the merged weights, and the HF
export's logits against the model as the run uses it.

Weight bounds, per tensor type written (w: the merged fp32 weight, ŵ: what transformers reads back):
  F32: ŵ = w.  F16 / BF16: ŵ = w rounded to nearest-even in that type (what torch's cast gives), exactly.
  Q8_0: blocks of 32 consecutive values of a row share the scale d = max|w|/127, stored as fp16 (d16); the
      values are q = round(w/d) with |q| <= 127 and ŵ = q·d16. So |ŵ − w| <= |q·d − w| + |q|·|d16 − d|
      <= d/2 + 127·|d16 − d|, plus 127·d·2^-22 for fp32 arithmetic: w·(1/d) is computed in fp32 with a relative
      error below 3·2^-24 on a value up to 127 (it can move a value on a .5 boundary to the other side), and the
      reader's product q·d16 in fp32 adds 2^-24 relative. The bound is computed per block from w itself.
  Other types (K-quants and their fallbacks): no bound is claimed; the relative error is reported, and the
      llama.cpp checks (top-1 agreement, KL) measure the effect.
"""

from __future__ import annotations

from pathlib import Path

import torch

Q8_BLOCK = 32
_CASTS = {"F16": torch.float16, "BF16": torch.bfloat16}
CONFIG_KEYS = ("model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
               "num_attention_heads", "num_key_value_heads", "max_position_embeddings", "rms_norm_eps",
               "tie_word_embeddings")


def q8_0_bound(weight: torch.Tensor) -> torch.Tensor:
    """The per-element bound on |ŵ − w| for a Q8_0 tensor (see the module docstring), shaped like `weight`."""
    w = weight.detach().double().reshape(-1, Q8_BLOCK)
    d = w.abs().amax(dim=1, keepdim=True) / 127
    d16 = d.float().half().double()
    bound = d / 2 + 127 * (d16 - d).abs() + 127 * d * 2.0**-22
    return bound.expand_as(w).reshape(weight.shape)


def compare_tensor(type_name: str, read: torch.Tensor, merged: torch.Tensor) -> dict:
    """How a read-back tensor compares with the merged weight, for the type it was written in."""
    merged = merged.detach().float()
    error = (read.float() - merged).abs()
    out = {"type": type_name, "max_abs_error": float(error.max())}
    if type_name == "F32":
        out["passed"] = bool(torch.equal(read.float(), merged))
    elif type_name in _CASTS:
        out["passed"] = bool(torch.equal(read.float(), merged.to(_CASTS[type_name]).float()))
    elif type_name == "Q8_0" and merged.shape[-1] % Q8_BLOCK == 0:
        bound = q8_0_bound(merged)
        out["max_error_over_bound"] = float((error.double() / bound.clamp_min(1e-30)).max())
        out["passed"] = bool((error.double() <= bound).all())
    else:
        out["relative_error"] = float(error.norm() / merged.norm().clamp_min(1e-30))
        out["passed"] = None  # no bound claimed
    return out


def gguf_hf_names(model, arch: str, num_layers: int) -> dict[str, str]:
    """{HF parameter name: GGUF tensor name}, from the `gguf` package's tensor map (what the converter uses)."""
    import gguf

    arch_id = {name: key for key, name in gguf.MODEL_ARCH_NAMES.items()}[arch]
    names = gguf.get_tensor_name_map(arch_id, num_layers)
    out = {}
    for hf_name in model.state_dict():
        base, _, suffix = hf_name.rpartition(".")
        mapped = names.get_name(base)
        if mapped is not None:
            out[hf_name] = f"{mapped}.{suffix}"
    return out


def check_gguf_weights(gguf_file: Path, merged_model, types: dict[str, str], arch: str) -> dict:
    """Load the GGUF with transformers' GGUF reader (it dequantizes and undoes llama.cpp's row permutations) and
    compare every tensor with the merged fp32 weights, by the bound of the type it was written in."""
    from transformers import AutoModelForCausalLM

    read = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)
    read_state, merged_state = read.state_dict(), merged_model.state_dict()
    mapping = gguf_hf_names(merged_model, arch, merged_model.config.num_hidden_layers)
    tensors, by_type = {}, {}
    for name, merged in merged_state.items():
        gguf_name = mapping.get(name)
        if gguf_name is None or gguf_name not in types:
            # a tied output matrix has no tensor of its own; it is checked through token_embd
            continue
        if name not in read_state or read_state[name].shape != merged.shape:
            tensors[name] = {"type": types[gguf_name], "passed": False, "problem": "missing or wrong shape"}
            continue
        tensors[name] = compare_tensor(types[gguf_name], read_state[name], merged)
    for result in tensors.values():
        entry = by_type.setdefault(result["type"], {"num_tensors": 0, "max_abs_error": 0.0, "failed": 0})
        entry["num_tensors"] += 1
        entry["max_abs_error"] = max(entry["max_abs_error"], result.get("max_abs_error", 0.0))
        entry["failed"] += result["passed"] is False
        if "max_error_over_bound" in result:
            entry["max_error_over_bound"] = max(entry.get("max_error_over_bound", 0.0), result["max_error_over_bound"])
        if "relative_error" in result:
            entry["max_relative_error"] = max(entry.get("max_relative_error", 0.0), result["relative_error"])
    failed = sorted(name for name, result in tensors.items() if result["passed"] is False)
    return {"passed": not failed and bool(tensors), "num_tensors": len(tensors), "by_type": by_type,
            "failed_tensors": failed[:10], "bounds": "F32 exact; F16/BF16 equal to the round-to-nearest-even cast; "
            "Q8_0 per block |err| <= d/2 + 127|fp16(d)-d| + 127d*2^-22, d = max|w|/127; other types: reported only",
            "gguf_config": {k: getattr(read.config, k, None) for k in CONFIG_KEYS}}


def check_gguf_metadata(meta: dict, gguf_config: dict, model, tokenizer, end_ids: list[int]) -> dict:
    """GGUF metadata against the HF model: architecture and shapes (as transformers reads them back),
    vocabulary, BOS/EOS/end-of-turn ids, chat template, RoPE and context length."""
    from sftkit.data.chat_labels import end_of_turn_token_id

    config = model.config
    rope = (getattr(config, "rope_parameters", None) or {})
    hf_tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    eot = end_of_turn_token_id(tokenizer)
    comparisons = {f"config.{key}": (gguf_config.get(key), getattr(config, key, None)) for key in CONFIG_KEYS}
    comparisons.update({
        "vocabulary": (meta["tokens"][:len(hf_tokens)] if meta["tokens"] else None, hf_tokens),
        "vocabulary_size": (len(meta["tokens"] or []), config.vocab_size),
        "bos_token_id": (meta["bos_token_id"], tokenizer.bos_token_id),
        "eos_token_id (end of turn)": (meta["eos_token_id"], eot if eot is not None else tokenizer.eos_token_id),
        "eos_token_id in stop ids": (meta["eos_token_id"] in end_ids, True),
        "chat_template": (meta["chat_template"], tokenizer.chat_template),
        "context_length": (meta["context_length"], config.max_position_embeddings),
        "rope_freq_base": (meta["rope_freq_base"], rope.get("rope_theta", getattr(config, "rope_theta", None))),
    })
    if meta["eot_token_id"] is not None:
        comparisons["eot_token_id"] = (meta["eot_token_id"], eot)
    mismatched = {name: {"gguf": _short(a), "hf": _short(b)} for name, (a, b) in comparisons.items()
                  if not _same(a, b)}
    return {"passed": not mismatched, "num_compared": len(comparisons), "mismatched": mismatched,
            "architecture": meta["architecture"], "rope_scaling_type": meta["rope_scaling_type"]}


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(float(a) - float(b)) <= 1e-6 * max(abs(float(b)), 1e-30)
    return a == b


def _short(value):
    if isinstance(value, list):
        return f"list of {len(value)}"
    return value[:80] if isinstance(value, str) else value


def chat_ids(tokenizer, conversations: list[list[dict]]) -> list[list[int]]:
    """The token ids `sftkit generate` feeds the model for each conversation."""
    from sftkit.generation import render_prompt

    return [tokenizer.encode(render_prompt(tokenizer, c), add_special_tokens=False) for c in conversations]


@torch.no_grad()
def logits_of(model, ids: list[int]) -> torch.Tensor:
    return model(torch.tensor([ids])).logits[0].float()


@torch.no_grad()
def check_export_logits(export_model, expected_model, run_model, id_lists: list[list[int]]) -> dict:
    """The export as read from disk against (a) the merged weights rounded to the export dtype, in memory:
    identical weights give identical fp32 arithmetic, so the logits must be equal; and (b) the run's model with
    its adapter applied, unmerged: the distance is reported (dtype rounding and merge rounding)."""
    max_exact, max_run, agree, positions, kl = 0.0, 0.0, 0, 0, 0.0
    for ids in id_lists:
        got, exact, run = logits_of(export_model, ids), logits_of(expected_model, ids), logits_of(run_model, ids)
        max_exact = max(max_exact, float((got - exact).abs().max()))
        max_run = max(max_run, float((got - run).abs().max()))
        agree += int((got.argmax(-1) == run.argmax(-1)).sum())
        positions += len(ids)
        kl += float(torch.nn.functional.kl_div(got.log_softmax(-1), run.log_softmax(-1), log_target=True,
                                               reduction="sum"))
    return {"passed": max_exact == 0.0, "num_prompts": len(id_lists), "num_positions": positions,
            "max_abs_diff_vs_expected": max_exact,
            "vs_run_model": {"max_abs_logit_diff": max_run, "top1_agreement": agree / max(positions, 1),
                             "mean_kl": kl / max(positions, 1)}}
