"""The models one `sftkit serve` process holds, addressable by name (a request's `model`).

A merged model or plain base is one entry. A base with PEFT adapters is one model in memory with every
adapter loaded: each adapter is an entry, and so is the base with the adapters switched off (`base`).
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sftkit.errors import UserError
from sftkit.models import is_run_dir, load_for_inference, load_tokenizer, run_base_model
from sftkit.paths import check_input

BASE_NAME = "base"


@dataclass(eq=False)
class ServedModel:
    """One name a request can ask for. `tokenizer` is used by the generation thread only; `front_tokenizer`
    (a copy) by the request handlers, since a fast tokenizer must not be used by two threads at once."""

    name: str
    model: torch.nn.Module
    tokenizer: object
    adapter: str | None = None  # the PEFT adapter to activate; None: the model as loaded, "": adapters off
    description: str = ""
    front_tokenizer: object = field(init=False)

    def __post_init__(self):
        self.front_tokenizer = copy.deepcopy(self.tokenizer)

    @property
    def context_tokens(self) -> int:
        """Most tokens (prompt + reply) the model takes."""
        config = getattr(self.model, "config", None)
        return int(getattr(config, "max_position_embeddings", None) or 2048)

    @contextlib.contextmanager
    def active(self):
        """The model with this entry's adapter switched on (or all adapters off, for the base)."""
        if self.adapter is None:
            yield self.model
        elif self.adapter == "":
            with self.model.disable_adapter():
                yield self.model
        else:
            self.model.set_adapter(self.adapter)
            yield self.model


def parse_adapters(specs: list[str] | None) -> dict[str, Path]:
    """`NAME=DIR` options -> {name: adapter directory} (a run directory means its adapter/)."""
    adapters: dict[str, Path] = {}
    for spec in specs or []:
        name, sep, path = spec.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise UserError(f"--adapter {spec!r}: use NAME=DIR (e.g. --adapter support=runs/support)")
        directory = Path(path.strip()).expanduser()
        if is_run_dir(directory) and (directory / "adapter").is_dir():
            directory = directory / "adapter"
        check_input(directory, f"--adapter {name}", "dir")
        if not (directory / "adapter_config.json").exists():
            raise UserError(f"--adapter {name}: {directory} has no adapter_config.json: give a PEFT adapter "
                            "directory or a LoRA run directory")
        if name in adapters or name == BASE_NAME:
            raise UserError(f"--adapter {name}: the name is used twice (or is the reserved `{BASE_NAME}`)")
        adapters[name.strip()] = directory
    return adapters


def load_catalog(spec: str, adapters: dict[str, Path], device: torch.device,
                 dtype: torch.dtype) -> dict[str, ServedModel]:
    """Load `spec` (run directory, model directory, hub id or `default`) and `adapters` on `device`."""
    model, tokenizer, description = load_for_inference(spec)
    name = _served_name(spec)
    catalog: dict[str, ServedModel] = {}
    is_peft = hasattr(model, "peft_config")
    if is_run_dir(spec) and not is_peft and adapters:
        raise UserError(f"{spec} is a merged or fully fine-tuned model: --adapter needs the base it was trained "
                        f"from; serve that base (or a LoRA run) with --adapter")
    if is_peft:
        catalog[name] = ServedModel(name, model, tokenizer, "default", description)
    if adapters:
        from peft import PeftModel

        for adapter_name, directory in adapters.items():
            if adapter_name in catalog:
                raise UserError(f"--adapter {adapter_name}: that name is already served ({description})")
            try:
                if hasattr(model, "peft_config"):
                    model.load_adapter(str(directory), adapter_name=adapter_name)
                else:
                    model = PeftModel.from_pretrained(model, str(directory), adapter_name=adapter_name)
            except (ValueError, RuntimeError, OSError) as exc:
                raise UserError(f"--adapter {adapter_name}: cannot load {directory} on {description} "
                                f"({str(exc).splitlines()[0]}): was it trained from this base?") from None
            own = load_tokenizer(str(directory)) if (directory / "tokenizer_config.json").exists() else tokenizer
            catalog[adapter_name] = ServedModel(adapter_name, model, own, adapter_name, f"adapter {directory}")
    if hasattr(model, "peft_config"):
        base_tokenizer = load_tokenizer(run_base_model(spec)) if is_run_dir(spec) else tokenizer
        catalog[BASE_NAME] = ServedModel(BASE_NAME, model, base_tokenizer, "", "base model, adapters off")
    else:
        catalog[name] = ServedModel(name, model, tokenizer, None, description)
    model.to(device=device, dtype=dtype).eval()
    return catalog


def _served_name(spec: str) -> str:
    """A run or model directory is served under its directory name; `default` and hub ids as given."""
    path = Path(spec).expanduser()
    return path.resolve().name if path.is_dir() else spec

