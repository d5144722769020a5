"""The settings of `sftkit serve` (every CLI option is one field) and the checks made before anything loads."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from sftkit.config import Section, format_errors
from sftkit.errors import ConfigError

DEFAULT_KEYS_ENV = "SFTKIT_API_KEYS"


class ServeSettings(Section):
    host: str = Field("127.0.0.1", description="Address to bind. Anything but a loopback address needs API keys.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0 = any free port).")
    api_keys_file: Path | None = Field(None, description="File of API keys, one per line (`#` comments); clients "
                                       "send one as `Authorization: Bearer KEY`.")
    api_keys_env: str = Field(DEFAULT_KEYS_ENV, description="Environment variable holding API keys (comma or "
                              "whitespace separated), used with or instead of the file.")
    batch_size: int = Field(8, ge=1, le=256, description="Most replies generated together: whatever is waiting "
                            "(up to this many) is batched; 1 serves requests one at a time.")
    max_queue: int = Field(64, ge=1, description="Most requests admitted at once (waiting or generating); more "
                           "get 429 with Retry-After.")
    retry_after_seconds: int = Field(1, ge=1, description="The Retry-After a 429 carries.")
    request_timeout_seconds: float = Field(120.0, gt=0, description="A request still unanswered after this long "
                                           "is stopped and gets 504.")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest request body; larger ones get 413.")
    max_prompt_tokens: int = Field(4096, ge=1, description="Longest prompt in tokens (chat template included); "
                                   "longer ones get 400 (context_length_exceeded).")
    default_temperature: float = Field(1.0, ge=0.0, le=2.0, description="Temperature for requests that set "
                                       "none (1.0 as in OpenAI's API; 0 = greedy).")
    default_max_tokens: int = Field(256, ge=1, description="Reply limit for requests that set no max_tokens.")
    max_tokens_limit: int = Field(2048, ge=1, description="Largest max_tokens a request may ask for.")
    max_choices: int = Field(8, ge=1, description="Largest `n` (replies per request).")
    guard_blocklists: list[str] = Field(default_factory=list, description="Guardrail blocklists (`default` = the "
                                        "shipped one); a blocked request or reply gets finish_reason content_filter.")
    guard_classifier: str | None = Field(None, description="Guardrail classifier, package.module:function.")
    audit_log: Path | None = Field(None, description="JSONL audit log (default: RUN/serve/audit.jsonl, or "
                                   "SFTKIT_HOME/serve/audit.jsonl when serving a model that is not a run).")
    audit_max_bytes: int = Field(10_000_000, ge=10_000, description="Rotate the audit log at this size.")
    audit_backups: int = Field(5, ge=1, description="Rotated audit logs kept (audit.jsonl.1 ...).")
    log_content: bool = Field(False, description="Also write prompts and replies to the audit log.")
    drift_embedding: Literal["auto", "minilm", "hashed", "none"] = Field(
        "auto", description="Nearest-neighbour drift against the run's training prompts: `minilm` (the embed "
        "extra), `hashed` (bag of words), `none`, or `auto` (minilm when installed, else none).")
    upstream: str | None = Field(None, description="Gateway mode: URL of an OpenAI-compatible server "
                                 "(e.g. http://gpu-node:8000/v1) that generates instead of this process.")
    upstream_key_env: str | None = Field(None, description="Environment variable holding the upstream's API key.")
    upstream_timeout_seconds: float = Field(600.0, gt=0, description="Read timeout for the upstream.")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="In-process mode: `auto` (CUDA when available), `cpu` or `cuda[:N]`.")
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description="Weights dtype: `auto` = bf16 on "
                                                           "CUDA with bf16 support, else fp32.")
    num_threads: int | None = Field(None, ge=1, description="CPU threads for torch (default: all cores).")

    @model_validator(mode="after")
    def _consistent(self):
        problems = []
        if self.default_max_tokens > self.max_tokens_limit:
            problems.append(f"default_max_tokens {self.default_max_tokens} is above max_tokens_limit "
                            f"{self.max_tokens_limit}: lower it or raise the limit")
        if self.upstream is not None and not self.upstream.startswith(("http://", "https://")):
            problems.append(f"--upstream {self.upstream!r}: give an http:// or https:// URL")
        if problems:
            raise ValueError("\n".join(problems))
        return self


def settings_from(options: dict) -> ServeSettings:
    """Settings from CLI options (None values are left at their defaults); every problem reported at once."""
    try:
        return ServeSettings(**{k: v for k, v in options.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, ServeSettings)) from None


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
